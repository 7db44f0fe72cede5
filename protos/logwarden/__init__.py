"""LogWarden protos: the logwarden.v1 contract and its generated code (``logwarden.protos.logwarden.v1``)."""
