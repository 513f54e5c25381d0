"""A simulated fortnight of nightly runs on the sandbox, with KapMan's and the sandbox's clocks
stepping day by day: every morning (after the flat file is final) and every trading evening
(after the close), status after each run; a skipped day, a snapshot taken by hand, a republished
file, and a second nightly while one holds the lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import psycopg
import pytest

from kapman import calendar
from kapman.clock import NEW_YORK
from kapman.config import Settings, load_settings
from kapman.ingest import options
from kapman.ops import lock, nightly, status
from kapman.progress import NullProgress
from kapman.sandbox.market import Market
from kapman.sandbox.mirror import write_mirror
from kapman.sandbox.rest import SandboxRestServer
from kapman.step import Outcome

pytestmark = pytest.mark.integration

#: A small warehouse: 40 tickers, and a 60-day retention window (recorded in hypertable_lifecycle,
#: which status and the nightly read, and in the retention jobs' configs where the edition has them)
#: so the first load is a few dozen files, not five hundred.
MARKET = Market(seed=3, n_tickers=40, days=90, end_date=date(2025, 12, 19), contracts_per_chain=40)
RETENTION_DAYS = 60
WATCHLIST = ["AAPL", "MSFT", "NVDA", "QQQ", "SPY"]
FIRST_EVENING = date(2025, 12, 1)
LAST_DAY = date(2025, 12, 12)
SKIPPED = date(2025, 12, 3)         # no nightly that evening nor the next morning: its snapshot is lost
BY_HAND = date(2025, 12, 5)         # options taken by hand that evening, no nightly: A3 waits for the next
REPUBLISHED = (date(2025, 12, 9), date(2025, 12, 5))   # on the morning of the 9th, the 5th's file changes


def morning(day: date) -> datetime:
    return datetime.combine(day, time(11, 30), tzinfo=NEW_YORK).astimezone(UTC)


def evening(day: date) -> datetime:
    return datetime.combine(day, time(16, 30), tzinfo=NEW_YORK).astimezone(UTC)


@dataclass
class World:
    url: str
    mirror: Path
    rest: SandboxRestServer
    monkeypatch: pytest.MonkeyPatch
    published: set[date] = field(default_factory=set)

    def at(self, instant: datetime) -> Settings:
        """Both clocks at ``instant`` and every flat file final by then published."""
        self.monkeypatch.setenv("KAPMAN_NOW", instant.isoformat())
        self.rest.set_clock(instant)
        final = {d for d in MARKET.trading_days
                 if datetime.combine(d + timedelta(days=1), time(11), tzinfo=NEW_YORK) <= instant}
        write_mirror(MARKET, self.mirror, sorted(final - self.published))
        self.published |= final
        return load_settings(Path("/nonexistent"))

    def nightly(self, instant: datetime):  # type: ignore[no-untyped-def]
        return nightly.run(self.at(instant), NullProgress())

    def status(self, instant: datetime) -> status.StatusReport:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return status.report(conn, instant)


@pytest.fixture
def world(fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    watchlists = tmp_path / "watchlists"
    watchlists.mkdir()
    (watchlists / "core.txt").write_text("\n".join(WATCHLIST) + "\n")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("UPDATE public.hypertable_lifecycle SET drop_after = make_interval(days => %s)",
                     (RETENTION_DAYS,))
        # the retention jobs (community edition) keep the same window, as status and validate expect
        conn.execute("SELECT alter_job(job_id, config => jsonb_set(config, '{drop_after}', to_jsonb(%s::text))) "
                     "FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' "
                     "AND hypertable_schema = 'public'", (f"{RETENTION_DAYS} days",))
    with SandboxRestServer(MARKET, api_key="fortnight-key-123") as rest:
        for name, value in {"DATABASE_URL": fresh_db, "POLYGON_BASE_URL": rest.base_url,
                            "POLYGON_API_KEY": rest.api_key, "FLATFILES_MIRROR_DIR": str(mirror),
                            "KAPMAN_WATCHLISTS_DIR": str(watchlists), "KAPMAN_ENV_FILE": "/nonexistent"}.items():
            monkeypatch.setenv(name, value)
        yield World(fresh_db, mirror, rest, monkeypatch)


def verdicts(report: status.StatusReport) -> dict[str, str]:
    return {c.area: c.verdict.name for c in report.checks if c.verdict.name != "OK"}


def test_a_fortnight_of_nightlies(world: World) -> None:
    runs: list[tuple[datetime, Outcome]] = []
    day = FIRST_EVENING
    instants = [evening(FIRST_EVENING)]
    while day < LAST_DAY:
        day += timedelta(days=1)
        instants.append(morning(day))
        if calendar.is_trading_day(day):
            instants.append(evening(day))
    skipped = {evening(SKIPPED), morning(SKIPPED + timedelta(days=1)), evening(BY_HAND)}

    for instant in instants:
        if instant == evening(BY_HAND):
            settings = world.at(instant)
            assert options.run(settings, options.OptionsParams(), NullProgress()).outcome is Outcome.OK
            continue
        if instant in skipped:
            continue
        if instant == morning(REPUBLISHED[0]):
            world.at(instant)
            path = world.mirror / MARKET.flat_file_key(REPUBLISHED[1])
            path.write_bytes(MARKET.flat_file_csv_gz(REPUBLISHED[1], mtime=1))
            plan = _plan(world, instant)
            assert [t.step for t in plan.tasks] == ["tickers", "splits", "watchlists", "ohlcv", "a2"]
            assert plan.tasks[3].reason == f"flat files 1 new (2025-12-08), 1 republished ({REPUBLISHED[1]})"
            # A2 again for every computed date from the republished day on, and for the new day.
            refreshed = plan.tasks[4].args
            assert refreshed["force"] is True and refreshed["dates"][0] == REPUBLISHED[1]
            assert refreshed["dates"][-1] == date(2025, 12, 8)

        result = world.nightly(instant)
        runs.append((instant, result.outcome))
        report = world.status(instant)
        catching_up = instant == evening(SKIPPED + timedelta(days=1))
        lost_yet = instant >= evening(SKIPPED + timedelta(days=1))
        if catching_up:
            # The first run after the skipped day: it catches up and reports the lost snapshot.
            assert result.outcome is Outcome.PARTIAL
            assert [(f.unit, f.reason.split(":")[0]) for f in result.failures] == \
                [(f"options {SKIPPED}", "snapshot lost")]
            done = result.details.steps
            assert done["ohlcv"].details.files_loaded == 1
            assert [str(d) for d in done["a2"].details.dates] == [str(SKIPPED)]
            assert done["options"].done == len(WATCHLIST)
            assert [str(d) for d in done["a3"].details.dates] == [str(SKIPPED + timedelta(days=1))]
        else:
            assert result.outcome is Outcome.OK, (instant, result.summary())
        if lost_yet:
            # The loss stays in the options check; the runs check shows it until the next nightly.
            assert verdicts(report) == ({"options": "WARN", "runs": "WARN"} if catching_up else
                                        {"options": "WARN"}), (instant, report.render())
            assert report.check("options").details["lost_recent"] == [SKIPPED]
        else:
            assert verdicts(report) == {}, (instant, report.render())

        if instant == morning(BY_HAND + timedelta(days=1)):
            # Saturday morning: Friday's file, A2 for Friday and the A3 the hand-taken snapshot waited for.
            assert [t.step for t in result.details.plan.tasks] == \
                ["tickers", "splits", "watchlists", "ohlcv", "a2", "a3"]
            assert [str(d) for d in result.details.steps["a3"].details.dates] == [str(BY_HAND)]
        if instant == morning(REPUBLISHED[0]):
            with psycopg.connect(world.url) as conn:
                etag = conn.execute("SELECT etag FROM ingest_files WHERE trading_date = %s",
                                    (REPUBLISHED[1],)).fetchone()[0]
            assert etag == _md5(path)

    # Idempotent: again at the same instant, nothing is due.
    again = world.nightly(instants[-1])
    assert again.outcome is Outcome.OK and again.headline == "nothing was due"
    assert len(runs) == len(instants) - len(skipped)

    with psycopg.connect(world.url) as conn:
        a2_dates, a3_dates, snaps = conn.execute("""
            SELECT count(DISTINCT time) FILTER (WHERE technical_indicators_json IS NOT NULL),
                   count(DISTINCT time) FILTER (WHERE dealer_metrics_json IS NOT NULL),
                   (SELECT count(DISTINCT time) FROM options_chains)
            FROM daily_snapshots""").fetchone()
        nightly_rows = conn.execute("SELECT status, count(*) FROM ingest_runs WHERE job = 'nightly' "
                                    "GROUP BY 1 ORDER BY 1").fetchall()
        bars, bar_rows, a2_rows = conn.execute("""
            SELECT (SELECT count(DISTINCT date) FROM ohlcv), (SELECT count(*) FROM ohlcv),
                   (SELECT count(*) FROM daily_snapshots WHERE technical_indicators_json IS NOT NULL)""").fetchone()
        history = conn.execute("SELECT count(*) FROM ingest_runs WHERE job = 'a2' AND args->>'history' = 'true'"
                               ).fetchone()[0]
    sessions = list(calendar.trading_days(FIRST_EVENING, LAST_DAY))
    # The first nightly found no A2 and computed the indicator history (it used to start A2 at the
    # newest due day, Friday 2025-11-28): one A2 row per bar on every date of the window, each
    # later nightly adding its new day; the history was one run.
    assert a2_dates == bars > len(sessions) and a2_rows == bar_rows and history == 1
    assert snaps == len(sessions) - 1 == a3_dates          # every session but the lost one
    assert nightly_rows == [("ok", len(runs)), ("partial", 1)]      # the runs, the rerun, the lost day


def test_a_second_nightly_refuses_while_one_runs(world: World) -> None:
    settings = world.at(evening(FIRST_EVENING))
    env = {**os.environ, "KAPMAN_NOW": evening(FIRST_EVENING).isoformat()}
    with lock.exclusive(settings.require_database_url()):
        proc = subprocess.run([sys.executable, "-m", "scripts.nightly", "--log-file", ""], capture_output=True,
                              text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: another nightly run is in progress (database backend ")
    assert "Traceback" not in proc.stderr
    with psycopg.connect(world.url) as conn:
        assert conn.execute("SELECT count(*) FROM ingest_runs").fetchone()[0] == 0   # it did nothing


def test_dry_run_prints_the_plan_and_changes_nothing(world: World, tmp_path: Path) -> None:
    world.at(evening(FIRST_EVENING))
    env = {**os.environ, "KAPMAN_NOW": evening(FIRST_EVENING).isoformat()}
    log = tmp_path / "logs" / "nightly.log"
    proc = subprocess.run([sys.executable, "-m", "scripts.nightly", "--dry-run", "--log-file", str(log)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "nightly plan as of 2025-12-01 16:30 New York (KapMan's clock):"
    assert [line.split()[0] for line in lines[1:7]] == ["tickers", "splits", "watchlists", "ohlcv", "options",
                                                        "a2"]
    assert "snapshot of 2025-12-01's session (the watchlist symbols)" in proc.stdout
    assert not log.exists()
    with psycopg.connect(world.url) as conn:
        assert conn.execute("SELECT count(*) FROM ingest_runs").fetchone()[0] == 0

    # The same from cron: a summary line on stdout, the run in the rotating log; then nothing is due.
    proc = subprocess.run([sys.executable, "-m", "scripts.nightly", "-q", "--log-file", str(log)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("nightly: ok · 7 of 7 steps done (tickers, splits, watchlists, ohlcv, options, a2, "
                                 "a3)")
    text = log.read_text()
    assert "nightly plan as of 2025-12-01 16:30 New York" in text and "nightly: ok · 7 of 7 steps done" in text
    assert "ohlcv: ok · backfill" in text and world.rest.api_key not in text
    again = subprocess.run([sys.executable, "-m", "scripts.nightly", "--json", "--log-file", str(log)],
                           capture_output=True, text=True, env=env, timeout=60)
    data = json.loads(again.stdout)
    assert (again.returncode, data["status"], data["plan"]["tasks"]) == (0, "ok", [])


def _plan(world: World, instant: datetime) -> nightly.Plan:
    settings = world.at(instant)
    with psycopg.connect(world.url, autocommit=True) as conn:
        return nightly.plan(settings, conn, instant)


def _md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - the mirror's ETag
