"""``python -m logwarden.core.cli``: the ``logwarden`` command."""

from logwarden.core.cli import main

raise SystemExit(main())
