"""Step 4: watchlist reconciliation against a real TimescaleDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg
import pytest

from kapman.errors import ConfigError, InputError
from kapman.ingest.tickers import ingest_tickers
from kapman.ingest.watchlists import ingest_watchlists
from kapman.providers.polygon import PolygonClient

pytestmark = pytest.mark.integration


def state(db: psycopg.Connection) -> dict[tuple[str, str], bool]:
    return {(w, s): a for w, s, a in db.execute("SELECT watchlist_id, symbol, active FROM watchlists").fetchall()}


@pytest.fixture
def tickers_db(db: psycopg.Connection, polygon: PolygonClient) -> psycopg.Connection:
    ingest_tickers(db, polygon, force=True)
    return db


def test_reconcile_adds_deactivates_reactivates(tickers_db: psycopg.Connection, tmp_path: Path) -> None:
    db = tickers_db
    (tmp_path / "core.txt").write_text("AAPL\nMSFT\nNVDA\n")
    (tmp_path / "etf.txt").write_text("SPY\nQQQ\n")
    first = ingest_watchlists(db, tmp_path, effective_date=date(2025, 12, 1))
    lists = first.details.lists
    assert (lists["core"].added, lists["core"].active) == (3, 3)
    assert lists["etf"].added == 2 and first.exit_code == 0 and first.done == 5
    (tmp_path / "core.txt").write_text("AAPL\nNVDA\nORCL\n")   # MSFT removed, ORCL added
    second = ingest_watchlists(db, tmp_path, effective_date=date(2025, 12, 2))
    core = second.details.lists["core"]
    assert (core.added, core.deactivated, core.reactivated, core.active) == (1, 1, 0, 3)
    (tmp_path / "core.txt").write_text("AAPL\nNVDA\nORCL\nMSFT\n")  # MSFT back
    third = ingest_watchlists(db, tmp_path, effective_date=date(2025, 12, 3))
    assert (third.details.lists["core"].reactivated, third.details.lists["core"].added) == (1, 0)
    (tmp_path / "etf.txt").unlink()                              # deleted file: list deactivated
    fourth = ingest_watchlists(db, tmp_path)
    assert (fourth.details.lists["etf"].deactivated, fourth.details.lists["etf"].active) == (2, 0)
    s = state(db)
    assert s[("etf", "SPY")] is False and s[("core", "MSFT")] is True and len(s) == 6   # nothing deleted
    row = db.execute("SELECT effective_date, source FROM watchlists WHERE symbol = 'MSFT'").fetchone()
    assert row[0] == date(2025, 12, 3) and row[1] == "core.txt"


def test_rerun_changes_nothing(tickers_db: psycopg.Connection, tmp_path: Path) -> None:
    (tmp_path / "core.txt").write_text("AAPL\nMSFT\n")
    ingest_watchlists(tickers_db, tmp_path)
    again = ingest_watchlists(tickers_db, tmp_path)
    o = again.details.lists["core"]
    assert (o.added, o.reactivated, o.deactivated, o.active) == (0, 0, 0, 2)
    assert (again.written, again.unchanged, again.exit_code) == (0, 2, 0)


def test_invalid_file_writes_nothing(tickers_db: psycopg.Connection, tmp_path: Path) -> None:
    (tmp_path / "core.txt").write_text("AAPL\nMSFT\n")
    ingest_watchlists(tickers_db, tmp_path)
    (tmp_path / "core.txt").write_text("AAPL\nNOT A SYMBOL\n")
    with pytest.raises(InputError, match="core.txt:2"):
        ingest_watchlists(tickers_db, tmp_path)
    assert state(tickers_db) == {("core", "AAPL"): True, ("core", "MSFT"): True}


@pytest.mark.parametrize("damage", ["empty", "no symbols", "binary", "clash", "non-ascii", "unreadable"])
def test_bad_directories_and_files_write_nothing(tickers_db: psycopg.Connection, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    (tmp_path / "mvp.txt").write_text("AAPL\nMSFT\n")
    ingest_watchlists(tickers_db, tmp_path)
    before = state(tickers_db)
    if damage == "empty":
        (tmp_path / "mvp.txt").unlink()
    elif damage == "no symbols":
        (tmp_path / "mvp.txt").write_text("# emptied by mistake\n")
    elif damage == "binary":
        (tmp_path / "extra.txt").write_bytes(b"\x00\x01\x02AAPL")
    elif damage == "clash":
        (tmp_path / "MVP.txt").write_text("AAPL\n")          # shares AAPL with mvp.txt
    elif damage == "non-ascii":
        (tmp_path / "mvp.txt").write_text("AAPL\nıbm\nßpy\n")
    else:
        def denied(self: Path) -> None:
            raise PermissionError(13, "Permission denied", str(self))
        monkeypatch.setattr(Path, "iterdir", denied)
    with pytest.raises((ConfigError, InputError)):
        ingest_watchlists(tickers_db, tmp_path)
    assert state(tickers_db) == before


@pytest.mark.parametrize("damage", ["dangling link", "fifo", "device"])
def test_a_watchlist_name_that_is_no_readable_file_writes_nothing(tickers_db: psycopg.Connection, tmp_path: Path,
                                                                   damage: str) -> None:
    """mvp.txt turned into a link to an unmounted share (or a FIFO, or a link to a device) was skipped as if
    the file were deleted: the list was deactivated, 150 symbols out of the evening's option snapshots."""
    (tmp_path / "mvp.txt").write_text("AAPL\nMSFT\n")
    (tmp_path / "etf.txt").write_text("SPY\n")
    ingest_watchlists(tickers_db, tmp_path)
    before = state(tickers_db)
    (tmp_path / "mvp.txt").unlink()
    if damage == "dangling link":
        (tmp_path / "mvp.txt").symlink_to(tmp_path / "unmounted" / "mvp.txt")
        said = f"{tmp_path / 'mvp.txt'} is not a readable file (a link to {tmp_path / 'unmounted' / 'mvp.txt'}, " \
               "which does not exist)"
    elif damage == "fifo":
        os.mkfifo(tmp_path / "mvp.txt")
        said = f"{tmp_path / 'mvp.txt'} is not a readable file (a FIFO)"
    else:
        (tmp_path / "mvp.txt").symlink_to("/dev/null")
        said = f"{tmp_path / 'mvp.txt'} is not a readable file (a device)"
    with pytest.raises(ConfigError) as info:
        ingest_watchlists(tickers_db, tmp_path)
    assert info.value.message == said and info.value.exit_code == 2
    assert info.value.hint == "restore the file, or delete the name to deactivate its list; nothing was written"
    assert state(tickers_db) == before


def test_unresolved_symbols_are_failures_with_the_likely_symbol(tickers_db: psycopg.Connection,
                                                                tmp_path: Path) -> None:
    (tmp_path / "core.txt").write_text("AAPL\nZZZQX\nmsft\n")
    result = ingest_watchlists(tickers_db, tmp_path)
    assert [(f.unit, f.reason) for f in result.failures] == [
        ("ZZZQX", "no such ticker (core.txt:2)"),
        ("msft", "no such ticker; did you mean MSFT? (core.txt:3)"),
    ]
    assert (result.done, result.exit_code) == (1, 1)                 # partial
    assert "failed msft: no such ticker; did you mean MSFT? (core.txt:3)" in result.summary()
    # Kept exactly as written: never mapped to MSFT.
    assert state(tickers_db) == {("core", "AAPL"): True, ("core", "ZZZQX"): True, ("core", "msft"): True}


def test_case_sensitive_symbols_resolve_exactly(db: psycopg.Connection, realistic_polygon: PolygonClient,
                                                tmp_path: Path) -> None:
    ingest_tickers(db, realistic_polygon, force=True)
    (tmp_path / "mvp.txt").write_text("AAP\nAAp\nTPC\nTpC\nGLD\nNVDL\naap\n")
    result = ingest_watchlists(db, tmp_path)
    assert [(f.unit, f.reason) for f in result.failures] == [
        ("aap", "no such ticker; did you mean AAP or AAp? (mvp.txt:7)")]
    rows = db.execute("SELECT w.symbol, t.symbol, t.type FROM watchlists w LEFT JOIN tickers t ON t.symbol = w.symbol "
                      "ORDER BY w.symbol COLLATE \"C\"").fetchall()
    assert rows == [("AAP", "AAP", "CS"), ("AAp", "AAp", "PFD"), ("GLD", "GLD", "ETV"), ("NVDL", "NVDL", "ETS"),
                    ("TPC", "TPC", "CS"), ("TpC", "TpC", "PFD"), ("aap", None, None)]


def test_huge_duplicate_file_gives_a_capped_summary_and_ledger(tickers_db: psycopg.Connection, fresh_db: str,
                                                              tmp_path: Path) -> None:
    (tmp_path / "core.txt").write_text("AAPL\n" * 1_000_000)
    env = {**os.environ, "KAPMAN_ENV_FILE": "/nonexistent"}
    proc = subprocess.run([sys.executable, "-m", "scripts.ingest_watchlists", "--db-url", fresh_db,
                           "--dir", str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout) < 2000
    assert "duplicates AAPL (line 2), AAPL (line 3)" in proc.stdout and "... and 999989 more" in proc.stdout
    summary = tickers_db.execute("SELECT summary FROM ingest_runs WHERE job = 'watchlists'").fetchone()[0]
    assert len(json.dumps(summary)) < 4000
    assert summary["lists"]["core"]["duplicates"] == 999_999


def test_mvp_watchlist_resolves_fully_on_the_sandbox(reference_db: psycopg.Connection) -> None:
    # The runbook's Step 3 check: 0 rows.
    rows = reference_db.execute("""
        SELECT w.symbol FROM public.watchlists w LEFT JOIN public.tickers t ON t.symbol = w.symbol
        WHERE w.active = true AND t.id IS NULL ORDER BY w.symbol LIMIT 50;""").fetchall()
    assert rows == []
    count = reference_db.execute("SELECT COUNT(*) FROM public.watchlists WHERE active = true;").fetchone()[0]
    assert count >= 120


def cli(fresh_db: str, directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAPMAN_ENV_FILE": "/nonexistent"}
    dated = [] if "--effective-date" in extra else ["--effective-date", "2025-12-19"]   # given once only
    return subprocess.run([sys.executable, "-m", "scripts.ingest_watchlists", "--db-url", fresh_db,
                           "--dir", str(directory), *dated, *extra],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_before_tickers_exist_is_nothing_to_do_and_writes_nothing(fresh_db: str, tmp_path: Path) -> None:
    (tmp_path / "core.txt").write_text("AAPL\nAAPL\n")
    proc = cli(fresh_db, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.startswith("watchlists: nothing-to-do · public.tickers is empty")
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM watchlists").fetchone() == (0,)
        assert conn.execute("SELECT status FROM ingest_runs WHERE job = 'watchlists'").fetchone() == (
            "nothing-to-do",)


def test_cli_exit_codes_follow_what_resolved(tickers_db: psycopg.Connection, fresh_db: str, tmp_path: Path) -> None:
    (tmp_path / "core.txt").write_text("AAPL\nAAPL\n")
    ok = cli(fresh_db, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "core: 1 active (1 added, 0 reactivated, 0 deactivated, duplicates AAPL (line 2))" in ok.stdout
    assert "every active symbol resolves to a ticker" in ok.stdout
    (tmp_path / "core.txt").write_text("AAPL\naapl\n")
    partial = cli(fresh_db, tmp_path, "--json")
    assert partial.returncode == 1
    out = json.loads(partial.stdout)
    assert out["status"] == "partial" and out["failures"] == [
        {"unit": "aapl", "reason": "no such ticker; did you mean AAPL? (core.txt:2)"}]
    (tmp_path / "core.txt").write_text("ZZZQX\n")
    failed = cli(fresh_db, tmp_path)
    assert failed.returncode == 2 and "failed ZZZQX: no such ticker (core.txt:1)" in failed.stdout
    with psycopg.connect(fresh_db) as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM ingest_runs WHERE job = 'watchlists' "
                                               "ORDER BY started_at").fetchall()]
    assert statuses == ["ok", "partial", "failed"]


@pytest.mark.parametrize(("setup", "first_line"), [
    (lambda d: None, "error: no watchlist in {d} (no <watchlist_id>.txt file)"),
    (lambda d: (d / "mvp.txt").write_bytes(b"AAPL\n\x00\x00"),
     "error: {d}/mvp.txt: binary file, not a watchlist (a NUL byte)"),
    (lambda d: (d / "mvp.txt").write_text("AAPL\nıbm\n"),
     "error: {d}/mvp.txt:2: invalid symbol 'ıbm' (ASCII letters, digits and '.', starting with a letter; "
     "an index as I:SPX)"),
])
def test_cli_bad_input_is_one_line_exit_2_and_nothing_written(  # type: ignore[no-untyped-def]
        tickers_db: psycopg.Connection, fresh_db: str, tmp_path: Path, setup, first_line: str) -> None:
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "mvp.txt").write_text("AAPL\nMSFT\n")
    assert cli(fresh_db, tmp_path / "ok").returncode == 0
    bad = tmp_path / "bad"
    bad.mkdir()
    setup(bad)
    proc = cli(fresh_db, bad)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.splitlines()[0] == first_line.format(d=bad)
    assert state(tickers_db) == {("mvp", "AAPL"): True, ("mvp", "MSFT"): True}


def test_cli_refuses_an_effective_date_after_today_and_a_file_for_a_directory(
        tickers_db: psycopg.Connection, fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "core.txt").write_text("AAPL\n")
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19T21:00:00Z")
    future = cli(fresh_db, tmp_path, "--effective-date", "2025-12-22")
    assert future.returncode == 2 and "Traceback" not in future.stderr
    assert future.stderr.splitlines()[0] == "error: 2025-12-22 is after today (2025-12-19 by KapMan's clock)"
    a_file = cli(fresh_db, tmp_path / "core.txt")
    assert a_file.returncode == 2
    assert a_file.stderr.splitlines()[0] == (f"error: the watchlist directory {tmp_path / 'core.txt'} is a file: "
                                             "name the directory that holds <watchlist_id>.txt files")
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM watchlists").fetchone() == (0,)


def _symbols(db: psycopg.Connection, n: int) -> list[str]:
    return [r[0] for r in db.execute("SELECT symbol FROM tickers WHERE active AND symbol NOT LIKE 'I:%%' "
                                     "ORDER BY symbol LIMIT %s", (n,)).fetchall()]


@pytest.mark.parametrize("emptied", ["", "# mvp, cut short\n"])
def test_an_emptied_file_keeps_its_list_and_the_others_apply(tickers_db: psycopg.Connection, tmp_path: Path,
                                                             emptied: str) -> None:
    """A 0-byte (or comments-only) mvp.txt beside other lists deactivated all 150 members and exited 0:
    every one of those symbols' option snapshots lost from that evening on."""
    names = _symbols(tickers_db, 152)
    (tmp_path / "mvp.txt").write_text("\n".join(names[:150]) + "\n")
    (tmp_path / "etf.txt").write_text(f"{names[150]}\n")
    assert ingest_watchlists(tickers_db, tmp_path).exit_code == 0
    (tmp_path / "mvp.txt").write_text(emptied)
    (tmp_path / "etf.txt").write_text(f"{names[150]}\n{names[151]}\n")
    held = ingest_watchlists(tickers_db, tmp_path)
    assert (held.exit_code, held.outcome.value) == (1, "partial")
    assert [(f.unit, f.reason) for f in held.failures] == [(
        "mvp.txt", "it would deactivate all 150 active symbols of watchlist mvp (a file emptied or cut short "
                   "reads so, and inactive symbols get no option snapshots); mvp is kept as stored. Restore "
                   "the file, or rerun with --allow-deactivations if they really went")]
    mvp, etf = held.details.lists["mvp"], held.details.lists["etf"]
    assert (mvp.active, mvp.deactivated, mvp.held) == (150, 0, 150)
    assert (etf.active, etf.added) == (2, 1)
    assert sum(a for (w, _), a in state(tickers_db).items() if w == "mvp") == 150
    allowed = ingest_watchlists(tickers_db, tmp_path, allow_deactivations=True)
    assert allowed.exit_code == 0 and allowed.failures == []
    assert (allowed.details.lists["mvp"].active, allowed.details.lists["mvp"].deactivated) == (0, 150)
    assert len(state(tickers_db)) == 152       # deactivated, never deleted


@pytest.mark.parametrize(("kept", "held"), [(3, True), (124, True), (125, False)])
def test_a_shrink_past_the_tickers_limit_is_held(tickers_db: psycopg.Connection, tmp_path: Path,
                                                 kept: int, held: bool) -> None:
    """The refresh's rule: more than 5% of the list's active symbols, at least 25, stay active unless
    --allow-deactivations (150 -> 125 deactivates 25: allowed; 150 -> 124 deactivates 26: held)."""
    names = _symbols(tickers_db, 150)
    (tmp_path / "mvp.txt").write_text("\n".join(names) + "\n")
    ingest_watchlists(tickers_db, tmp_path)
    (tmp_path / "mvp.txt").write_text("\n".join(names[:kept]) + "\n")
    result = ingest_watchlists(tickers_db, tmp_path)
    mvp = result.details.lists["mvp"]
    if held:
        assert (result.exit_code, mvp.active, mvp.deactivated, mvp.held) == (1, 150, 0, 150 - kept)
        assert result.failures[0].reason.startswith(
            f"it would deactivate {150 - kept} of the 150 active symbols of watchlist mvp, more than a run "
            "deactivates unless told to (5% of them, at least 25): a file cut short reads so")
    else:
        assert (result.exit_code, mvp.active, mvp.deactivated, mvp.held) == (0, kept, 150 - kept, 0)


def test_a_deleted_file_still_retires_its_list(tickers_db: psycopg.Connection, tmp_path: Path) -> None:
    """Deleting the file is how a list is retired (documented): not held, however many it had."""
    names = _symbols(tickers_db, 151)
    (tmp_path / "mvp.txt").write_text("\n".join(names[:150]) + "\n")
    (tmp_path / "etf.txt").write_text(f"{names[150]}\n")
    ingest_watchlists(tickers_db, tmp_path)
    (tmp_path / "mvp.txt").unlink()
    result = ingest_watchlists(tickers_db, tmp_path)
    mvp = result.details.lists["mvp"]
    assert (result.exit_code, mvp.deactivated, mvp.active, mvp.held) == (0, 150, 0, 0)


def test_cli_an_emptied_file_exits_1_naming_it_and_the_flag_applies_it(
        tickers_db: psycopg.Connection, fresh_db: str, tmp_path: Path) -> None:
    names = _symbols(tickers_db, 151)
    (tmp_path / "mvp.txt").write_text("\n".join(names[:150]) + "\n")
    (tmp_path / "etf.txt").write_text(f"{names[150]}\n")
    assert cli(fresh_db, tmp_path).returncode == 0
    (tmp_path / "mvp.txt").write_bytes(b"")
    held = cli(fresh_db, tmp_path)
    assert held.returncode == 1 and held.stderr == ""
    lines = held.stdout.splitlines()
    assert lines[0].startswith("watchlists: partial · 2 lists, 151 active entries") and "· mvp.txt failed ·" in lines[0]
    assert [line for line in lines[1:] if "mvp.txt" in line] == [
        "  failed mvp.txt: it would deactivate all 150 active symbols of watchlist mvp (a file emptied or cut "
        "short reads so, and inactive symbols get no option snapshots); mvp is kept as stored. Restore the file, "
        "or rerun with --allow-deactivations if they really went"]
    assert "mvp: 150 active (0 added, 0 reactivated, 0 deactivated, 150 held active)" in held.stdout
    allowed = cli(fresh_db, tmp_path, "--allow-deactivations")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "mvp: 0 active (0 added, 0 reactivated, 150 deactivated)" in allowed.stdout
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT status, args->>'allow_deactivations' FROM ingest_runs "
                            "WHERE job = 'watchlists' ORDER BY started_at").fetchall()
    assert rows == [("ok", "false"), ("partial", "false"), ("ok", "true")]
    help_text = subprocess.run([sys.executable, "-m", "scripts.ingest_watchlists", "--help"],
                               capture_output=True, text=True, timeout=60).stdout
    assert "--allow-deactivations" in help_text
