"""Restore archived option-chain snapshots into a rebuilt database (after Step 5, before Step 6).

The runbook's spelling of ``kapman restore-options``: the command is ``kapman.commands.restore_options``.
"""

from kapman.cli import entrypoint
from kapman.commands.restore_options import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
