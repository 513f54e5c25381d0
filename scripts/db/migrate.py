"""Apply the pending migrations in place, keeping the data.

The runbook's spelling of ``kapman migrate``: the command is ``kapman.commands.migrate``.
"""

from kapman.cli import entrypoint
from kapman.commands.migrate import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
