"""Step 6: option-chain snapshots of the active watchlist symbols into public.options_chains.

The runbook's spelling of ``kapman options``: the command is ``kapman.commands.options``.
"""

from kapman.cli import entrypoint
from kapman.commands.options import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
