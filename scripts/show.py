"""A symbol's key values for a trading date (the report's table) in the terminal.

The runbook's spelling of ``kapman show``: the command is ``kapman.commands.show``.
"""

from kapman.cli import entrypoint
from kapman.commands.show import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
