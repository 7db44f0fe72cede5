"""`| anomalyscore`: the custom search command (SCP v2). Logic: logwarden_splunk.commands.AnomalyScoreCommand."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from logwarden_splunk.commands import AnomalyScoreCommand
from splunklib.searchcommands import dispatch

dispatch(AnomalyScoreCommand, sys.argv, sys.stdin, sys.stdout, __name__)
