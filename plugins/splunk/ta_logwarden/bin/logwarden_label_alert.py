"""The "LogWarden: label results" alert action (alert_actions.conf). Logic: logwarden_splunk.alert."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from logwarden_splunk.alert import main

if __name__ == "__main__":
    sys.exit(main(sys.argv, sys.stdin, sys.stderr))
