"""LogWarden core."""
