"""``execute``'s ledger row and its signals, as processes: Ctrl-C and SIGTERM end a step as an
interruption recorded as such (exit 130 and 143), never a row left ``running``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.integration

#: A step whose body records one unit, says it is ready, then waits to be stopped.
PROBE = """
import sys, time
from dataclasses import dataclass
from kapman import cli
from kapman.config import Settings
from kapman.execute import Definition, execute
from kapman.registry import Step

@dataclass(frozen=True)
class Params:
    def validate(self): pass

def body(ctx, params):
    ctx.conn.execute("SELECT 1")
    ctx.result.done = 1
    print("ready", flush=True)
    time.sleep(60)

STEP = Definition(Params, body)
sys.modules["probe_step"] = sys.modules[__name__]
step = Step("probe", "", "probe_step", "probes", "probe_step")

def main(argv):
    result = execute(step, Settings(database_url=sys.argv[1]), Params())
    return result.exit_code

sys.exit(cli.run_main(main, []))
"""


def _ledger(url: str) -> list[tuple]:
    with psycopg.connect(url) as c:
        return c.execute("SELECT job, status, error, summary->>'done' FROM ingest_runs").fetchall()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_the_step_as_interrupted(fresh_db: str, sig: signal.Signals, code: int) -> None:
    proc = subprocess.Popen([sys.executable, "-c", PROBE, fresh_db], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert err.startswith("interrupted: work already committed is kept") and "Traceback" not in err
    assert _ledger(fresh_db) == [("probe", "interrupted", "interrupted (Ctrl-C or SIGTERM)", "1")]


def test_a_run_is_one_ledger_row_under_the_steps_name(fresh_db: str, tmp_path: Path) -> None:
    from kapman.config import Settings
    from kapman.ingest.watchlists import WatchlistsParams, run

    (tmp_path / "core.txt").write_text("AAPL\n")
    result = run(Settings(database_url=fresh_db), WatchlistsParams(directory=tmp_path))   # no tickers yet
    assert result.outcome.value == "nothing-to-do" and result.step == "watchlists"
    assert _ledger(fresh_db) == [("watchlists", "nothing-to-do", None, "0")]


def test_each_dated_step_tells_whether_a_day_is_done(fresh_db: str) -> None:
    from datetime import date

    from kapman import registry

    day = date(2025, 12, 19)
    with psycopg.connect(fresh_db) as conn:
        assert {s.name: s.done(conn, day) for s in registry.STEPS if s.done_on} == \
            {"ohlcv": False, "options": False, "a2": False, "a3": False}
        conn.execute("INSERT INTO tickers (id, symbol, active) VALUES (gen_random_uuid(), 'AAPL', true)")
        conn.execute("INSERT INTO ohlcv (date, ticker_id, open, high, low, close, volume) "
                     "SELECT %s, id, 1, 1, 1, 1, 1 FROM tickers", (day,))
        assert registry.get("ohlcv").done(conn, day) and not registry.get("a2").done(conn, day)
