"""Generated code for package logwarden.v1 (``make protos``); do not edit by hand."""
