"""Read-only listings of the warehouse for the terminal: ``kapman runs``, ``kapman snapshots``."""
