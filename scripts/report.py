"""Reports: a symbol's day, a watchlist's index, or the warehouse's coverage, as offline HTML pages.

The runbook's spelling of ``kapman report``: the command is ``kapman.commands.report``.
"""

from kapman.cli import entrypoint
from kapman.commands.report import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
