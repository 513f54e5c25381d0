"""The main job: the whole runbook, end to end, against a local TimescaleDB.

Grows with the project; today it paves the database (A5) and reports.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from kapman.config import load_settings


def main(argv: Sequence[str] | None = None) -> int:
    settings = load_settings()
    url = settings.require_database_url()
    steps = [[sys.executable, "-m", "scripts.db.a5_deterministic_rebuild", "--db-url", url]]
    for step in steps:
        print(f"$ python -m {step[2]}", flush=True)
        code = subprocess.call(step)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
