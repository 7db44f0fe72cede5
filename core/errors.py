"""The errors LogWarden reports to its users: each message names the problem (and the field or file)."""

from __future__ import annotations


class LogWardenError(Exception):
    """Base class of every error LogWarden reports to a user; the message names the problem."""


class BadLineError(LogWardenError):
    """A single input line cannot be used; the reader counts it and goes on."""
