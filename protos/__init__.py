"""LogWarden protos."""
