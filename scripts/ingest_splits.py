"""Step 3b: load stock splits from Polygon's reference API (for A2's split adjustment).

The runbook's spelling of ``kapman splits``: the command is ``kapman.commands.splits``.
"""

from kapman.cli import entrypoint
from kapman.commands.splits import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
