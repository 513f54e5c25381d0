"""Step 8: dealer positioning metrics from options snapshots into daily_snapshots (A3).

The runbook's spelling of ``kapman a3``: the command is ``kapman.commands.a3``.
"""

from kapman.cli import entrypoint
from kapman.commands.a3 import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
