"""Is the warehouse healthy? A verdict per area, the command that mends each problem, an exit code.

The runbook's spelling of ``kapman status``: the command is ``kapman.commands.status``.
"""

from kapman.cli import entrypoint
from kapman.commands.status import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
