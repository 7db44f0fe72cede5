"""LogWarden plugins."""
