"""LogWarden integrations."""
