"""The nightly: everything due by KapMan's clock and the NYSE calendar, in order, one run at a time.

The runbook's spelling of ``kapman nightly``: the command is ``kapman.commands.nightly``.
"""

from kapman.cli import entrypoint
from kapman.commands.nightly import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
