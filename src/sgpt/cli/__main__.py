"""``python -m sgpt.cli``: the ``sgpt`` command (for subprocesses that run this interpreter)."""

from sgpt.cli import main

raise SystemExit(main())
