"""The nightly's rotating log file, attached by the CLI beside the console output."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

from kapman.cli import _Scrubber
from kapman.config import PROJECT_ROOT, Settings

DEFAULT_PATH = PROJECT_ROOT / "logs" / "nightly.log"
#: A nightly writes a few kilobytes; 5 MB x 7 files keeps months of runs and bounds the disk.
MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 7


def attach(path: Path, settings: Settings) -> RotatingFileHandler | None:
    """Log INFO and above to ``path`` (rotated), leaving the console at the level it had.  A log that
    cannot be written is a warning, not a reason to skip the night's work (a session's option
    snapshot can only be taken that evening): the run then logs to the console alone."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    except OSError as exc:
        logging.getLogger(__name__).warning("cannot write the log file %s (%s); this run logs to the console "
                                            "only (--log-file PATH elsewhere, or --log-file '' for none)",
                                            path, exc.strerror or exc)
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    handler.addFilter(_Scrubber(settings.secrets()))
    root = logging.getLogger()
    for existing in root.handlers:
        if existing.level == logging.NOTSET:
            existing.setLevel(root.level)
    root.setLevel(min(root.level, logging.INFO))
    root.addHandler(handler)
    return handler
