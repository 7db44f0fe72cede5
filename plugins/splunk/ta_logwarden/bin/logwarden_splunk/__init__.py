"""LogWarden's Splunk app logic: the search commands, the alert action and the credential handling.

The scripts in ``bin/`` are thin: they put ``lib/`` (the vendored splunklib and the standard-library
LogWarden client ``logwarden_client``) on ``sys.path`` and run a class from here. Everything runs under
Splunk's own Python (3.9 and 3.13): standard library, splunklib and ``logwarden_client`` only.
"""

APP = "ta_logwarden"
