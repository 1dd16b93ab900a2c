"""``python -m sgpt`` = the ``sgpt`` command."""

from sgpt.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
