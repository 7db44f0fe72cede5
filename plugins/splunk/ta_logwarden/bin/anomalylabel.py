"""`| anomalylabel`: the custom search command (SCP v2). Logic: logwarden_splunk.commands.AnomalyLabelCommand."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from logwarden_splunk.commands import AnomalyLabelCommand
from splunklib.searchcommands import dispatch

dispatch(AnomalyLabelCommand, sys.argv, sys.stdin, sys.stdout, __name__)
