"""``python -m kapman``: the ``kapman`` command, run by this interpreter (the demo's steps run it so,
whether or not the environment's ``bin`` directory is on PATH)."""

from kapman.console import entry

if __name__ == "__main__":
    entry()
