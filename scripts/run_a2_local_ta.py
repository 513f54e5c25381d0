"""Step 7: technical indicators and price metrics into daily_snapshots (A2).

The runbook's spelling of ``kapman a2``: the command is ``kapman.commands.a2``.
"""

from kapman.cli import entrypoint
from kapman.commands.a2 import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
