"""Step 5: OHLCV flat files (mirror and S3) into public.ohlcv, against a real TimescaleDB."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import psycopg
import pytest

from kapman.config import load_settings
from kapman.errors import UsageError
from kapman.ingest.ohlcv import OhlcvDetails, OhlcvParams, ingest
from kapman.ingest.ohlcv_plan import incremental_window
from kapman.providers.flatfiles import FileRef, FlatFileSource, MirrorSource
from kapman.sandbox.market import Market
from kapman.sandbox.mirror import write_mirror
from kapman.sandbox.s3 import SandboxS3
from kapman.step import StepResult
from tests.support.s3source import sandbox_s3_source

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("market_clock")]
PREFIX = "us_stocks_sip/day_aggs_v1"
END = date(2025, 12, 19)


def mirror(directory: Path) -> MirrorSource:
    return MirrorSource(directory, PREFIX)


class Loaded(StepResult):
    """A StepResult with the OHLCV details as attributes, for short assertions."""

    def __getattr__(self, name: str) -> object:
        try:
            return getattr(self.__dict__["details"], name)
        except (KeyError, AttributeError):
            raise AttributeError(name) from None


def load(db: psycopg.Connection, source: FlatFileSource, mode: str = "backfill", **kw: object) -> Loaded:
    result = Loaded("ohlcv", unit=source.unit, details=OhlcvDetails())
    ingest(db, source, OhlcvParams(mode=mode, **kw), result)  # type: ignore[arg-type]
    return result


def base(db: psycopg.Connection, source: FlatFileSource, days: int, **kw: object) -> Loaded:
    return load(db, source, "base", days=days, as_of=END, **kw)


def known_rows(db: psycopg.Connection, market: Market, days: list[date]) -> int:
    symbols = {r[0] for r in db.execute("SELECT symbol FROM tickers").fetchall()}
    return sum(int(market.bars(d)["ticker"].isin(symbols).sum()) for d in days)


def test_base_load_matches_the_files(reference_db: psycopg.Connection, market: Market, mirror_dir: Path) -> None:
    days = market.trading_days
    result = load(reference_db, mirror(mirror_dir), start=days[0], end=END)
    assert result.files_loaded == len(days) and not result.failures and result.exit_code == 0
    assert result.rows_inserted == known_rows(reference_db, market, days) == \
        reference_db.execute("SELECT count(*) FROM ohlcv").fetchone()[0]
    assert result.unknown_rows > 0 and result.rejected == 0 and result.missing_days == []
    bars = market.bars(END).set_index("ticker")
    got = dict(((s, (o, h, lo, c, v, n)) for s, o, h, lo, c, v, n in reference_db.execute("""
        SELECT t.symbol, o.open, o.high, o.low, o.close, o.volume, o.transactions
        FROM ohlcv o JOIN tickers t ON t.id = o.ticker_id WHERE o.date = %s""", (END,)).fetchall()))
    for symbol in ("AAPL", "NVDA", "SPY"):
        b = bars.loc[symbol]
        assert got[symbol] == (b.open, b.high, b.low, b.close, b.volume, b.transactions)
    fractional = [v for *_, v, _n in got.values() if v != int(v)]
    assert fractional, "fractional volume must survive"
    dates = {r[0] for r in reference_db.execute("SELECT DISTINCT date FROM ohlcv").fetchall()}
    assert dates == set(days) and date(2025, 11, 27) not in dates      # Thanksgiving: no file, no error


def test_two_writer_connections_store_and_count_what_one_does(reference_db: psycopg.Connection, market: Market,
                                                               mirror_dir: Path) -> None:
    """The command writes files on two connections at once; rows, ledger and counts are one writer's."""
    days = market.trading_days
    one = load(reference_db, mirror(mirror_dir), start=days[0], end=END)
    stored = reference_db.execute("SELECT ticker_id, date, open, high, low, close, volume, transactions, vwap "
                                  "FROM ohlcv ORDER BY 1, 2").fetchall()
    ledger = reference_db.execute("SELECT key, etag, trading_date, rows_loaded FROM ingest_files ORDER BY 1").fetchall()
    reference_db.execute("TRUNCATE ohlcv, ingest_files")
    result = Loaded("ohlcv", unit="files", details=OhlcvDetails())
    with psycopg.connect(reference_db.info.dsn, password=reference_db.info.password, autocommit=True) as other:
        ingest(reference_db, mirror(mirror_dir), OhlcvParams(mode="backfill", start=days[0], end=END), result,
               extra=[other])
    assert (result.files_loaded, result.rows_inserted, result.done) == (one.files_loaded, one.rows_inserted, one.done)
    assert result.files_loaded == len(days) and not result.failures
    assert reference_db.execute("SELECT ticker_id, date, open, high, low, close, volume, transactions, vwap "
                                "FROM ohlcv ORDER BY 1, 2").fetchall() == stored
    assert reference_db.execute("SELECT key, etag, trading_date, rows_loaded FROM ingest_files ORDER BY 1"
                                ).fetchall() == ledger


def test_rerun_skips_and_force_reloads_without_changes(reference_db: psycopg.Connection, mirror_dir: Path) -> None:
    first = base(reference_db, mirror(mirror_dir), 30)
    again = base(reference_db, mirror(mirror_dir), 30)
    assert again.files_loaded == 0 and again.files_unchanged == first.files_loaded
    assert again.exit_code == 0 and "up to date" in again.summary()
    forced = base(reference_db, mirror(mirror_dir), 30, force=True)
    assert forced.files_loaded == first.files_loaded
    assert (forced.rows_inserted, forced.rows_updated, forced.rows_unchanged) == (0, 0, first.rows_inserted)
    assert forced.removed == 0


def test_republished_file_is_reloaded_and_changed_rows_updated(reference_db: psycopg.Connection, market: Market,
                                                               tmp_path: Path) -> None:
    write_mirror(market, tmp_path, days=market.trading_days[-3:])
    load(reference_db, mirror(tmp_path), start=market.trading_days[-3], end=END)
    # Republish the last day with one corrected bar: new bytes, new ETag.
    key = tmp_path / market.flat_file_key(END)
    import gzip
    lines = gzip.decompress(key.read_bytes()).decode().splitlines()
    header, rows = lines[0], lines[1:]
    aapl = next(i for i, r in enumerate(rows) if r.startswith("AAPL,"))
    f = rows[aapl].split(",")
    f[1] = str(float(f[1]) + 100)  # volume corrected
    rows[aapl] = ",".join(f)
    key.write_bytes(gzip.compress(("\n".join([header, *rows]) + "\n").encode(), mtime=0))
    result = load(reference_db, mirror(tmp_path), start=market.trading_days[-3], end=END)
    assert result.files_loaded == 1 and result.files_unchanged == 2
    assert (result.rows_inserted, result.rows_updated) == (0, 1)
    vol = reference_db.execute("SELECT o.volume FROM ohlcv o JOIN tickers t ON t.id = o.ticker_id "
                               "WHERE t.symbol = 'AAPL' AND o.date = %s", (END,)).fetchone()[0]
    assert vol == float(f[1])


def test_bad_rows_are_rejected_by_reason_and_good_rows_kept(reference_db: psycopg.Connection,
                                                           tmp_path: Path) -> None:
    bad_market = Market(seed=11, n_tickers=250, days=120, bad_rows=True)
    days = bad_market.trading_days[-5:]
    write_mirror(bad_market, tmp_path, days=days)
    result = load(reference_db, mirror(tmp_path), start=days[0], end=days[-1])
    assert not result.failures and result.files_loaded == 5
    for reason in ("malformed", "high_below_low", "negative_volume"):
        assert result.rejected_by_reason[reason] > 0, reason
        assert all("line " in s for s in result.reject_samples[reason])
    assert result.read == result.written + result.unchanged + result.rejected + result.unknown_rows
    assert reference_db.execute("SELECT count(*) FROM ohlcv WHERE high < low OR volume < 0").fetchone()[0] == 0
    assert "rejected high_below_low" in result.summary()


def test_crash_mid_run_loses_nothing_and_rerun_completes(reference_db: psycopg.Connection, market: Market,
                                                         mirror_dir: Path) -> None:
    class Crashing(MirrorSource):
        reads = 0

        def read(self, ref: FileRef) -> bytes:
            Crashing.reads += 1
            if Crashing.reads > 6:
                raise KeyboardInterrupt  # the operator's Ctrl-C, mid-download
            return super().read(ref)

    with pytest.raises(KeyboardInterrupt):
        base(reference_db, Crashing(mirror_dir, PREFIX), 40)
    committed = reference_db.execute("SELECT count(*) FROM ingest_files").fetchone()[0]
    assert 1 <= committed <= 6
    assert reference_db.execute("SELECT count(DISTINCT date) FROM ohlcv").fetchone()[0] == committed
    result = base(reference_db, mirror(mirror_dir), 40)
    assert result.files_unchanged == committed
    days = [d for d in market.trading_days if d >= date.fromordinal(END.toordinal() - 40)]
    assert reference_db.execute("SELECT count(*) FROM ohlcv").fetchone()[0] == \
        known_rows(reference_db, market, days)


def test_refuses_before_tickers(db: psycopg.Connection, mirror_dir: Path) -> None:
    with pytest.raises(UsageError, match="before tickers exist"):
        base(db, mirror(mirror_dir), 10)


def test_incremental_continues_from_newest_date(reference_db: psycopg.Connection, market: Market,
                                                mirror_dir: Path) -> None:
    with pytest.raises(UsageError, match="nothing to continue from") as info:
        incremental_window(reference_db)
    assert "scripts.ingest_ohlcv base" in (info.value.hint or "")
    load(reference_db, mirror(mirror_dir), start=date(2025, 12, 1), end=date(2025, 12, 12))
    window = incremental_window(reference_db, end=END)
    assert window.start == date(2025, 12, 13)
    result = load(reference_db, mirror(mirror_dir), "incremental", end=END)
    assert result.files_loaded == 5   # 15-19 December; the weekend simply has no file
    assert result.files_unchanged == 5 and result.republished == []  # 5-11 December listed again


def test_s3_source_gives_the_same_rows_as_the_mirror(reference_db: psycopg.Connection, market: Market) -> None:
    days = market.trading_days[-4:]
    with SandboxS3(market, days=days) as s3:
        source = sandbox_s3_source(s3)
        result = load(reference_db, source, start=days[0], end=days[-1])
        assert result.files_loaded == 4 and result.rows_inserted == known_rows(reference_db, market, days)
        s3.republish(days[-1])
        again = load(reference_db, source, start=days[0], end=days[-1])
        assert again.files_loaded == 1 and again.rows_updated == 0 and again.rows_unchanged > 0
    etags = reference_db.execute("SELECT count(DISTINCT etag) FROM ingest_files").fetchone()[0]
    assert etags == 4


def test_cli_base_with_mirror(fresh_db: str, reference_db: psycopg.Connection, mirror_dir: Path) -> None:
    # reference_db is fresh_db with tickers and watchlists loaded.
    env = {**os.environ, "FLATFILES_MIRROR_DIR": str(mirror_dir), "KAPMAN_ENV_FILE": "/nonexistent",
           "KAPMAN_NOW": "2025-12-19"}
    proc = subprocess.run([sys.executable, "-m", "scripts.ingest_ohlcv", "base", "--days", "10",
                           "--db-url", fresh_db, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import json
    summary = json.loads(proc.stdout)
    assert summary["start"] == "2025-12-09" and summary["end"] == "2025-12-19"
    assert summary["files_loaded"] == 9 and summary["rows_inserted"] > 0
    assert summary["status"] == "ok" and summary["counts"]["written"] == summary["rows_inserted"]
    assert np.isfinite(summary["seconds"])
    with psycopg.connect(fresh_db) as c:
        assert c.execute("SELECT status, summary->>'files_loaded' FROM ingest_runs WHERE job = 'ohlcv'").fetchall() \
            == [("ok", "9")]
    # the summary gives the rows' rate beside the files (the step contract's summary line had lost it)
    again = subprocess.run([sys.executable, "-m", "scripts.ingest_ohlcv", "base", "--days", "10", "--force",
                            "--db-url", fresh_db], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    headline = again.stdout.splitlines()[0]
    found = re.search(r": 9 files loaded \(([\d,]+) rows/s\), 0 unchanged · (\d+) read, .* · ([\d.]+)s$", headline)
    assert found, headline
    rate, read, seconds = int(found[1].replace(",", "")), int(found[2]), float(found[3])
    assert read > 0 and rate >= read / (seconds + 0.05) > 0


# -- the step contract: ledger outcome, lost connection, flags -----------------------------------

def _settings(url: str, mirror_dir: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FLATFILES_MIRROR_DIR", str(mirror_dir))
    return load_settings(Path("/nonexistent"), database_url=url)


def _ledger(url: str) -> list[tuple]:
    with psycopg.connect(url) as c:
        return c.execute("SELECT status, error, (summary->>'files_loaded')::int FROM ingest_runs "
                         "WHERE job = 'ohlcv' ORDER BY started_at").fetchall()


def test_run_records_ok_and_a_ctrl_c_as_interrupted(fresh_db: str, reference_db: psycopg.Connection,
                                                    mirror_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kapman.ingest import ohlcv

    settings = _settings(fresh_db, mirror_dir, monkeypatch)
    done = ohlcv.run(settings, OhlcvParams(mode="base", days=10, as_of=END))
    assert done.exit_code == 0 and done.details.files_loaded == 9

    class Interrupted(MirrorSource):
        reads = 0

        def read(self, ref: FileRef) -> bytes:
            Interrupted.reads += 1
            if Interrupted.reads > 3:
                raise KeyboardInterrupt
            return super().read(ref)

    monkeypatch.setattr(ohlcv, "open_source", lambda s, kind: Interrupted(mirror_dir, PREFIX))
    with pytest.raises(KeyboardInterrupt):
        ohlcv.run(settings, OhlcvParams(mode="base", days=30, as_of=END, force=True))
    (ok, interrupted) = _ledger(fresh_db)
    assert ok == ("ok", None, 9)
    assert interrupted[0] == "interrupted" and 1 <= interrupted[2] <= 3


def test_an_interrupt_while_a_write_commits_is_counted_with_it(fresh_db: str, reference_db: psycopg.Connection,
                                                                mirror_dir: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or SIGTERM) reaches the run while it waits for a file's write to commit, as it mostly
    does: the ledger row counts that file and its rows, as the tables hold them."""
    import signal
    import time

    from kapman.ingest import ohlcv

    settings = _settings(fresh_db, mirror_dir, monkeypatch)
    real_load = ohlcv._load
    loads = []

    def load(*args: object) -> object:
        counts = real_load(*args)  # type: ignore[arg-type]
        loads.append(1)
        if len(loads) == 3:        # committed; the signal arrives before the run has counted it
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
        return counts

    monkeypatch.setattr(ohlcv, "_load", load)
    with pytest.raises(KeyboardInterrupt):
        ohlcv.run(settings, OhlcvParams(mode="base", days=30, as_of=END))
    with psycopg.connect(fresh_db) as c:
        status, done, written = c.execute("SELECT status, summary->>'done', summary->'counts'->>'written' "
                                          "FROM ingest_runs WHERE job = 'ohlcv'").fetchone()  # type: ignore[misc]
        files, rows = c.execute("SELECT (SELECT count(*) FROM ingest_files), count(*) FROM ohlcv").fetchone()  # type: ignore[misc]
    assert status == "interrupted" and files >= 3
    assert (int(done), int(written)) == (files, rows)


def test_a_lost_connection_is_one_error_and_a_failed_ledger_row(fresh_db: str, reference_db: psycopg.Connection,
                                                                mirror_dir: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from kapman.errors import ConnectionLost
    from kapman.ingest import ohlcv

    writes: list[object] = []
    real_write_day = ohlcv.write_day

    def write_day(cur: psycopg.Cursor, *args: object) -> object:
        """Before the fourth write, the server ends its session (as a restart or a rebuild would)."""
        writes.append(args[0])   # the file's day
        if len(writes) == 4:
            with psycopg.connect(fresh_db, autocommit=True) as c:
                c.execute("SELECT pg_terminate_backend(%s)", (cur.connection.info.backend_pid,))
        return real_write_day(cur, *args)  # type: ignore[arg-type]

    settings = _settings(fresh_db, mirror_dir, monkeypatch)
    monkeypatch.setattr(ohlcv, "write_day", write_day)
    with pytest.raises(ConnectionLost) as info:
        ohlcv.run(settings, OhlcvParams(mode="base", days=30, as_of=END))
    # Files are written on two connections, each starting when its file is parsed: the fourth write
    # may be the fifth file's, so the fourth file and the one after the lost one (the sixth) may have
    # committed on the other connection before the loss was seen. The lost file never is; the report
    # says exactly what the ledger holds, either way.
    with psycopg.connect(fresh_db) as c:
        committed = c.execute("SELECT count(*) FROM ingest_files").fetchone()[0]
        days = {r[0] for r in c.execute("SELECT trading_date FROM ingest_files")}
    assert writes[3] not in days and committed in (3, 4, 5)
    assert info.value.message == f"the database connection was lost after {committed} files; rerun to resume"
    assert info.value.exit_code == 2
    ((status, error, loaded),) = _ledger(fresh_db)
    assert status == "failed" and error.startswith(
        f"ConnectionLost: the database connection was lost after {committed} files")
    assert loaded == committed


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.ingest_ohlcv", *args], capture_output=True, text=True,
                          env={**os.environ, "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_NOW": "2025-12-19", **env},
                          timeout=300)


def test_cli_flags_workers_range_and_date_aliases(fresh_db: str, reference_db: psycopg.Connection,
                                                  mirror_dir: Path) -> None:
    env = {"FLATFILES_MIRROR_DIR": str(mirror_dir)}
    zero = _cli(["--workers", "0", "base", "--db-url", fresh_db], env)
    assert zero.returncode == 2 and "--workers: '0' is out of range; expected an integer in [1, 32]" in zero.stderr
    assert "Traceback" not in zero.stderr
    help_text = _cli(["--help"], env).stdout
    assert "files downloaded and parsed at once" in help_text and "--source" in help_text
    old = _cli(["backfill", "--start", "2025-12-15", "--end", "2025-12-16", "--db-url", fresh_db, "--json"], env)
    new = _cli(["backfill", "--start-date", "2025-12-17", "--end-date", "2025-12-19", "--db-url", fresh_db,
                "--json"], env)
    assert old.returncode == new.returncode == 0, old.stderr + new.stderr
    import json
    assert json.loads(old.stdout)["files_loaded"] == 2 and json.loads(new.stdout)["files_loaded"] == 3
    up_to_date = _cli(["incremental", "--db-url", fresh_db], {**env, "KAPMAN_NOW": "2025-12-20T15:00:00Z"})
    assert up_to_date.returncode == 0 and "up to date" in up_to_date.stdout
    assert "2025-12-20..2025-12-19" not in up_to_date.stdout
    abbreviated = _cli(["incremental", "--recheck", "2", "--db-url", fresh_db], env)
    assert abbreviated.returncode == 2 and "unrecognized arguments: --recheck" in abbreviated.stderr
    # A window starting after today holds only files that cannot be published yet (it was "ok, up to date").
    for args in (["incremental", "--date", "2030-01-02"], ["base", "--as-of", "2025-12-22"],
                 ["backfill", "--start", "2025-12-22", "--end", "2025-12-23"]):
        future = _cli([*args, "--db-url", fresh_db], env)
        assert future.returncode == 2, future.stdout
        assert future.stderr.splitlines()[0] == f"error: {args[2]} is after today (2025-12-19 by KapMan's clock)"
    # one that ends after today is loaded, and named, up to today
    for mode in ("backfill", "incremental"):
        beyond = _cli([mode, "--start-date", "2025-12-18", "--end-date", "2100-01-01", "--db-url", fresh_db], env)
        assert beyond.returncode == 0, beyond.stderr
        assert beyond.stdout.startswith(f"ohlcv: ok · {mode} 2025-12-18..2025-12-19 from ")
        assert "2100" not in beyond.stdout


def test_cli_rest_source(fresh_db: str, reference_db: psycopg.Connection, rest: object) -> None:
    env = {"POLYGON_BASE_URL": rest.base_url, "POLYGON_API_KEY": rest.api_key}  # type: ignore[attr-defined]
    proc = _cli(["--source", "rest", "backfill", "--start-date", "2025-12-18", "--end-date", "2025-12-19",
                 "--db-url", fresh_db, "--json"], env)
    assert proc.returncode == 0, proc.stderr
    import json
    summary = json.loads(proc.stdout)
    assert summary["unit"] == "dates" and summary["files_loaded"] == 2 and summary["source"].startswith("rest:")
    assert reference_db.execute("SELECT count(DISTINCT date) FROM ohlcv").fetchone()[0] == 2
