"""Step 5: daily bars from the flat files (or the REST grouped-daily endpoint) into public.ohlcv.

The runbook's spelling of ``kapman ohlcv``: the command is ``kapman.commands.ohlcv``.
"""

from kapman.cli import entrypoint
from kapman.commands.ohlcv import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
