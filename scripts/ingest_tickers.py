"""Step 3: load the ticker universe from Polygon's reference API.

The runbook's spelling of ``kapman tickers``: the command is ``kapman.commands.tickers``.
"""

from kapman.cli import entrypoint
from kapman.commands.tickers import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
