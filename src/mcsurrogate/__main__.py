"""``python -m mcsurrogate`` runs the command line."""

import sys

from .cli import main

if __name__ == "__main__":  # guarded: worker processes started with "spawn" re-import this module
    sys.exit(main())
