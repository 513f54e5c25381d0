"""A5: drop and recreate the KapMan database, apply db/migrations, validate, fingerprint.

The runbook's spelling of ``kapman rebuild``: the command is ``kapman.commands.rebuild``.
"""

from kapman.cli import entrypoint
from kapman.commands.rebuild import main

__all__ = ["main"]

if __name__ == "__main__":
    entrypoint(main)
