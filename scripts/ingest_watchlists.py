"""Step 4: reconcile data/watchlists/*.txt into public.watchlists.

The runbook's spelling of ``kapman watchlists``: the command is ``kapman.commands.watchlists``.
"""

from kapman.cli import entrypoint
from kapman.commands.watchlists import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
