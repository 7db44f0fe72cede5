"""The ``logwarden`` command line: one module per subcommand, registered in ``main``."""

from logwarden.core.cli.main import main

__all__ = ["main"]
