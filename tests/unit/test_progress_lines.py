"""LineProgress: a task's counters are its own, not carried from the task before (a nightly's
steps share one progress)."""

from __future__ import annotations

import io

from kapman.progress import LineProgress


def test_counters_start_empty_for_each_task() -> None:
    out = io.StringIO()
    progress = LineProgress(out, interval=0)
    progress.start(2, "options", unit="symbol")
    progress.advance(1, contracts=5000, requests=40)
    progress.close()
    progress.start(3, "a2", unit="date")
    progress.advance(1, rows=11)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("a2: 1/3 date") and last.endswith("rows=11")
    assert "contracts" not in last and "requests" not in last
