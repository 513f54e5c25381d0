"""``scripts.status``: is the warehouse healthy, and what mends it.

Every age and window is measured by KapMan's clock and the NYSE calendar, never the server's
``now()``, so a replayed sandbox day reads the same as the real one.  Counts come from one
set-based pass (``kapman.ops.inventory``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import psycopg

from kapman import clock, registry
from kapman.config import Settings
from kapman.db import fingerprint, lifecycle, migrations, retention
from kapman.db import runs as ledger_runs
from kapman.errors import KapManError
from kapman.ops import commands as cmd
from kapman.ops import sessions
from kapman.ops.checks import Check, StatusReport, Verdict, day_list, span
from kapman.ops.inventory import (
    Inventory,
    a2_missing,
    a3_day,
    a3_missing,
    options_day,
    snapshot_days,
    take,
    thin_days,
    window_start,
)

#: Tickers refreshed less recently than this are stale (listings change daily; weekly is the floor).
TICKERS_STALE = timedelta(days=7)
#: Lost snapshots older than this many sessions are history, reported but no longer a warning.
LOST_RECENT_SESSIONS = 10
#: A run still 'running' after this long has probably died without the ledger knowing.
RUN_STUCK = timedelta(hours=6)
#: Chunks are 30 days; application retention is overdue once data is older than window + a chunk.
RETENTION_SLACK = timedelta(days=30)


def schema(conn: psycopg.Connection, now: datetime) -> Check:
    ledger = migrations.applied(conn)
    if not ledger:
        return Check("schema", Verdict.FAIL, "no schema_migrations ledger: the schema was never built", cmd.REBUILD)
    files = migrations.discover()
    try:
        migrations.check_drift(files, ledger)
    except KapManError as exc:
        return Check("schema", Verdict.FAIL, exc.message, exc.hint)
    pending = [m.filename for m in files if m.version not in ledger]
    modes: dict[str, str] = dict(conn.execute(
        "SELECT hypertable_name, retention_mode FROM public.hypertable_lifecycle").fetchall())
    details: dict[str, Any] = {"migrations_applied": len(ledger), "pending": pending,
                               "fingerprint": fingerprint.fingerprint(conn), "lifecycle": modes}
    recorded = lifecycle.read_clock(conn)
    details["clock"] = {"mode": recorded.mode, "frozen_at": recorded.frozen_at}
    mode = "/".join(sorted(set(modes.values()))) or "none"
    # The clock this status counts from (KAPMAN_NOW, else the recorded one): the recorded instant only
    # moves with a bulk load, so after a morning of reference steps it lags the status's own header.
    text = (f"{len(ledger)} migrations applied, fingerprint {details['fingerprint'][:16]}, lifecycle {mode}"
            + (f" ({lifecycle.Clock('frozen', now).describe()})" if recorded.mode == "frozen" else ""))
    if pending:
        return Check("schema", Verdict.FAIL, f"{text}; not applied: {', '.join(pending)}",
                     f"{cmd.MIGRATE} (in place, every row kept)", details)
    if not modes:
        return Check("schema", Verdict.FAIL, f"{text}: hypertable_lifecycle is empty", cmd.REBUILD, details)
    if lifecycle.ahead_of_real_time(now):   # a mistyped KAPMAN_NOW: every area counts from a day to come
        return Check("schema", Verdict.FAIL,
                     f"{text}; KapMan's clock ({now.astimezone(clock.NEW_YORK):%Y-%m-%d %H:%M} New York) is ahead "
                     f"of real time ({clock.real_now().astimezone(clock.NEW_YORK):%Y-%m-%d %H:%M}): every area "
                     "counts from a day that has not come, and no run drops or compresses on it",
                     lifecycle.FUTURE_CLOCK_FIX, details)
    if "policy" in modes.values():
        return _policy_jobs(conn, text, details, [t for t, m in modes.items() if m == "policy"],
                            recorded.policies_scheduled)
    return _application_retention(conn, text, details, now)


#: Job times as text: ``next_start`` is -infinity while a job runs (and after some ``alter_job``
#: calls on a job that never ran), which psycopg cannot load.  Running is ``job_stats``' to say.
_POLICY_JOBS = """
    SELECT j.job_id, j.hypertable_name, j.proc_name,
           CASE WHEN isfinite(j.next_start) THEN j.next_start END, j.next_start::text, s.last_run_status,
           (SELECT e.err_message FROM timescaledb_information.job_errors e
             WHERE e.job_id = j.job_id ORDER BY e.start_time DESC LIMIT 1), j.scheduled,
           s.job_status = 'Running', j.config
    FROM timescaledb_information.jobs j
    LEFT JOIN timescaledb_information.job_stats s USING (job_id)
    WHERE j.hypertable_schema = 'public' AND j.proc_name IN ('policy_retention', 'policy_compression')
    ORDER BY 2, 3"""


class _Job(NamedTuple):
    job_id: int
    table: str
    proc: str
    next_start: datetime | None
    shown: str | None
    last_run_status: str | None
    last_error: str | None
    scheduled: bool
    running: bool
    config: dict[str, Any] | None

    @property
    def name(self) -> str:
        return f"{self.proc} on {self.table}"

    @property
    def window(self) -> Any:
        return (self.config or {}).get(lifecycle.POLICY_WINDOW[self.proc])


def _policy_jobs(conn: psycopg.Connection, text: str, details: dict[str, Any], tables: list[str],
                 scheduled: bool) -> Check:
    jobs = [_Job(*r) for r in conn.execute(_POLICY_JOBS).fetchall()]
    details["policy_jobs"] = [{"job_id": j.job_id, "hypertable": j.table, "job": j.proc, "next_start": j.shown,
                               "last_run_status": j.last_run_status, "last_error": j.last_error,
                               "scheduled": j.scheduled, "running": j.running, "window": j.window} for j in jobs]
    windows = _windows(conn)
    have = {(j.table, j.proc) for j in jobs}
    missing = [(p, t) for t in tables for p in lifecycle.POLICY_PROCS if (t, p) not in have]
    if missing:     # added back as the migrations add it: a rebuild would destroy the option snapshots
        return Check("schema", Verdict.FAIL, f"{text}; policy jobs missing: "
                     + ", ".join(f"{p} on {t}" for p, t in missing),
                     " ; ".join(lifecycle.add_policy(p, t, _expected(windows, t, p), scheduled=scheduled)
                                for p, t in missing), details)
    altered = _altered(jobs, windows)
    if not scheduled:    # a frozen clock: KapMan keeps the windows itself after each run
        return _frozen_policy_jobs(jobs, text, details, altered, windows)
    failed = [j for j in jobs if j.last_run_status == "Failed"]
    paused = [j for j in jobs if not j.scheduled]
    soonest = min((j.next_start for j in jobs if j.next_start is not None and j.scheduled), default=None)
    running = [j.name for j in jobs if j.running]
    text += f"; {len(jobs)} policy jobs" + (f", next run {soonest:%Y-%m-%d %H:%M} UTC" if soonest else "")
    if running:
        text += f", running now: {', '.join(running)}"
    if paused and lifecycle.load_holds_pause(conn):    # the load puts them back on schedule when it ends
        text += f", paused for a running load: {', '.join(j.name for j in paused)}"
        paused = []
    problems, fixes = _altered_problem(altered, windows)
    if failed:   # SQL that runs as printed.  The scheduler's run is recorded in job_stats and clears the
        # warning; CALL run_job() runs in the caller's session and leaves the last run 'Failed'.
        problems.append("last run failed: " + ", ".join(j.name + (f" ({j.last_error})" if j.last_error else "")
                                                        for j in failed)
                        + "; mend the cause (timescaledb_information.job_errors), then run the fix")
        fixes.append(" ; ".join(f"SELECT alter_job({j.job_id}, next_start => now())" for j in failed))
    if paused:           # left paused by a load that was killed: nothing keeps the windows
        problems.append(f"paused with no load running: {', '.join(j.name for j in paused)}")
        fixes.append(" ; ".join(f"SELECT alter_job({j.job_id}, scheduled => true)" for j in paused))
    if problems:
        verdict = Verdict.FAIL if _drops_early(altered, windows) else Verdict.WARN
        return Check("schema", verdict, f"{text}; {'; '.join(problems)}", " ; ".join(fixes), details)
    return Check("schema", Verdict.OK, text, None, details)


def _windows(conn: psycopg.Connection) -> dict[str, tuple[timedelta, timedelta]]:
    """hypertable -> (drop_after, compress_after), the windows the warehouse keeps."""
    return {w.table: (w.drop_after, w.compress_after) for w in retention.windows(conn)}


def _expected(windows: dict[str, tuple[timedelta, timedelta]], table: str, proc: str) -> int:
    return windows[table][0 if proc == "policy_retention" else 1].days


def _altered(jobs: list[_Job], windows: dict[str, tuple[timedelta, timedelta]]) -> list[_Job]:
    """Jobs whose window is not the one ``hypertable_lifecycle`` records (a config edited by hand):
    the scheduler counts from the job's config, whatever the warehouse keeps."""
    return [j for j in jobs if j.table in windows
            and lifecycle.policy_interval(j.window) != timedelta(days=_expected(windows, j.table, j.proc))]


def _drops_early(altered: list[_Job], windows: dict[str, tuple[timedelta, timedelta]]) -> bool:
    """A retention job that drops sooner than the window destroys what the warehouse keeps, option
    snapshots included, which cannot be fetched again (one without a window fails instead)."""
    def sooner(j: _Job) -> bool:
        got = lifecycle.policy_interval(j.window)
        return got is not None and got < windows[j.table][0]
    return any(j.proc == "policy_retention" and sooner(j) for j in altered)


def _altered_problem(altered: list[_Job], windows: dict[str, tuple[timedelta, timedelta]]
                     ) -> tuple[list[str], list[str]]:
    if not altered:
        return [], []
    said = ", ".join(f"{j.name} counts {j.window or 'no window'} where the warehouse keeps "
                     f"{_expected(windows, j.table, j.proc)} days" for j in altered)
    return ([f"policy window edited: {said}"],
            [" ; ".join(lifecycle.restore_window(j.job_id, j.proc, _expected(windows, j.table, j.proc))
                        for j in altered)])


def _frozen_policy_jobs(jobs: list[_Job], text: str, details: dict[str, Any], altered: list[_Job],
                        windows: dict[str, tuple[timedelta, timedelta]]) -> Check:
    """On a frozen clock every policy job must stay paused: a scheduled one counts its window from
    the server's clock, not KapMan's, and drops (or compresses) data that KapMan's window keeps.
    An edited window is said too: it counts once the clock is real again."""
    live = [j for j in jobs if j.scheduled]
    problems, fixes = _altered_problem(altered, windows)
    if live:
        problems.insert(0, f"scheduled on the server's clock although KapMan's is frozen: "
                           f"{', '.join(j.name for j in live)} (would drop or compress by the server's date)")
        fixes.insert(0, " ; ".join(f"SELECT alter_job({j.job_id}, scheduled => false)" for j in live))
    else:
        text += f"; {len(jobs)} policy jobs paused, KapMan enforces the windows"
    if not problems:
        return Check("schema", Verdict.OK, text, None, details)
    verdict = Verdict.FAIL if live and _drops_early(altered, windows) else Verdict.WARN
    return Check("schema", verdict, f"{text}; {'; '.join(problems)}", " ; ".join(fixes), details)


def _application_retention(conn: psycopg.Connection, text: str, details: dict[str, Any], now: datetime) -> Check:
    oldest = conn.execute("SELECT min(date) FROM public.ohlcv").fetchone()[0]  # type: ignore[index]
    drop_after = conn.execute("SELECT drop_after FROM public.hypertable_lifecycle "
                              "WHERE hypertable_name = 'ohlcv'").fetchone()
    text += " (retention enforced by KapMan after each ingestion)"
    details["oldest_bar"] = oldest
    if oldest is not None and drop_after is not None:
        cutoff = clock.ny_date_of(now) - drop_after[0] - RETENTION_SLACK
        if oldest < cutoff:
            return Check("schema", Verdict.WARN, f"{text}; bars from {oldest} are past retention",
                         f"{registry.mend('ohlcv')} (drops old chunks when it finishes)", details)
    return Check("schema", Verdict.OK, text, None, details)


def tickers(conn: psycopg.Connection, now: datetime) -> Check:
    total, active = conn.execute("SELECT count(*), count(*) FILTER (WHERE active) FROM public.tickers").fetchone()  # type: ignore[misc]
    if not total:
        return Check("tickers", Verdict.FAIL, "no tickers: nothing can be ingested", cmd.TICKERS)
    refreshed = conn.execute("SELECT max(coalesce(clock_finished_at, finished_at)) FROM public.ingest_runs "
                             "WHERE job = 'tickers' AND status IN ('ok', 'nothing-to-do')").fetchone()[0]  # type: ignore[index]
    if refreshed is None:     # loaded some other way: the rows' own stamps
        refreshed = conn.execute("SELECT max(updated_at) FROM public.tickers").fetchone()[0]  # type: ignore[index]
    age = max(now - refreshed, timedelta(0))
    wl_active, unresolved, inactive, wl_indices = conn.execute("""
        SELECT count(DISTINCT w.symbol), count(DISTINCT w.symbol) FILTER (WHERE t.id IS NULL),
               count(DISTINCT w.symbol) FILTER (WHERE NOT t.active),
               count(DISTINCT w.symbol) FILTER (WHERE w.symbol LIKE 'I:%')
        FROM public.watchlists w LEFT JOIN public.tickers t ON t.symbol = w.symbol WHERE w.active""").fetchone()  # type: ignore[misc]
    details = {"tickers": total, "active": active, "refreshed": refreshed,
               "age_days": round(age / timedelta(days=1), 1),
               "watchlist_symbols": wl_active, "unresolved_watchlist_symbols": unresolved,
               "inactive_watchlist_symbols": inactive}
    text = (f"{active:,} active of {total:,}, refreshed {details['age_days']} days ago; "
            f"{wl_active} active watchlist symbols")
    if wl_indices:   # an index (I:SPX) has options and A3, never bars or A2: the stock flat files hold none
        text += f" ({wl_indices} indices: options and A3 only, no bars in the stock flat files)"
        details["watchlist_indices"] = wl_indices
    if age > TICKERS_STALE:
        return Check("tickers", Verdict.WARN, f"{text}: stale", f"{cmd.NIGHTLY} (or {cmd.TICKERS})", details)
    if not wl_active:
        return Check("tickers", Verdict.WARN, f"{text}: no active watchlist scopes options and A3",
                     cmd.WATCHLISTS, details)
    if unresolved or inactive:   # neither is in the watchlist scope: no option snapshot, no A3
        return Check("tickers", Verdict.WARN, f"{text}, {unresolved} without a ticker, {inactive} with an inactive "
                     "one (no snapshots)", f"correct data/watchlists/*.txt and run {cmd.WATCHLISTS}", details)
    return Check("tickers", Verdict.OK, text, None, details)


def ohlcv(inv: Inventory, now: datetime) -> Check:
    due = sessions.ohlcv_due_days(inv.start, now)
    if not inv.bars:
        return Check("ohlcv", Verdict.FAIL, "no bars loaded", cmd.OHLCV_BASE, {"due_days": len(due)})
    oldest, newest = min(inv.bars), max(inv.bars)
    # Days before the oldest bar are history never loaded; days after it are holes.
    before = [d for d in due if d < oldest]
    holes = [d for d in due if d > oldest and d not in inv.bars]
    thin = thin_days(inv)
    details = {"window": span(due), "due_days": len(due), "not_loaded_before_oldest": before, "missing": holes,
               "thin": thin, "oldest": oldest, "newest": newest, "newest_rows": inv.bars[newest]}
    text = (f"{len(due) - len(before) - len(holes)} of {len(due)} trading days {span(due)}; "
            f"newest {newest} ({inv.bars[newest]:,} bars)")
    if holes:
        return Check("ohlcv", Verdict.WARN, f"{text}; missing {day_list(holes)}", cmd.NIGHTLY, details)
    if before:
        return Check("ohlcv", Verdict.WARN, f"{text}; {len(before)} days before {oldest} not loaded",
                     cmd.OHLCV_BASE, details)
    if thin:
        return Check("ohlcv", Verdict.WARN, f"{text}; partial files: {day_list(thin)}",
                     cmd.ohlcv_reload(thin[0], thin[-1]), details)
    return Check("ohlcv", Verdict.OK, text, None, details)


def ledger(inv: Inventory) -> Check:
    loaded = {d: sum(f.rows_loaded for f in files) for d, files in inv.ledger.items()}
    unrecorded = sorted(d for d in inv.bars if d not in loaded)
    empty = sorted(d for d in loaded if d not in inv.bars and loaded[d])
    disagree = sorted(d for d in loaded if d in inv.bars and loaded[d] != inv.bars[d])
    details = {"files": sum(len(f) for f in inv.ledger.values()), "bars_without_file": unrecorded,
               "files_without_bars": empty, "count_mismatch": disagree}
    text = f"{details['files']} files recorded for {len(inv.bars)} days with bars"
    bad = sorted({*unrecorded, *empty, *disagree})
    if not bad:
        return Check("ledger", Verdict.OK, f"{text}; every count agrees", None, details)
    parts = [f"{label} {day_list(days, 3)}" for label, days in
             (("bars without a file:", unrecorded), ("files without bars:", empty),
              ("row counts differ:", disagree)) if days]
    return Check("ledger", Verdict.WARN, f"{text}; " + "; ".join(parts), cmd.ohlcv_reload(bad[0], bad[-1]), details)


def options(conn: psycopg.Connection, inv: Inventory, now: datetime) -> Check:
    """Per session: a snapshot with a chain of every watchlist symbol (``inventory.options_day``);
    today's until midnight New York is pending, then a symbol or a session without one is lost."""
    if not inv.snapshots:
        if not inv.watchlist_symbols:
            return Check("options", Verdict.WARN, "no snapshots and no active watchlist symbol to take",
                         cmd.WATCHLISTS)
        return Check("options", Verdict.FAIL, "no option snapshots",
                     f"{cmd.NIGHTLY} after the New York close (16:00, 13:00 on early-close days) (or {cmd.OPTIONS})")
    closed = sessions.closed_sessions(min(inv.snapshots), now)
    lost = [d for d in closed if d not in inv.snapshots and sessions.snapshot_window_over(d, now)]
    recent = closed[-LOST_RECENT_SESSIONS:]
    lost_recent = [d for d in lost if d in set(recent)]
    pending = sessions.snapshot_session(now)
    today = options_day(conn, pending) if pending is not None else None
    # Sessions of the recent past with a snapshot that lacks symbols: those symbols are lost.
    partial = {d: day.missing for d in recent if d in inv.snapshots and d != pending
               for day in [options_day(conn, d)] if day.missing}
    newest_time = max(max(v) for v in inv.snapshots.values())
    newest = options_day(conn, clock.ny_date_of(newest_time))
    taken = [d for d in closed if d in inv.snapshots]
    details = {"sessions": len(closed), "with_snapshot": len(taken), "lost": lost, "lost_recent": lost_recent,
               "lost_symbols": {str(d): m for d, m in partial.items()},
               "pending": pending if today is not None and not today.complete else None,
               "pending_missing": today.missing if today is not None else [],
               "writing": [str(r) for r in today.writing] if today is not None else [],
               "newest": newest_time, "newest_symbols": newest.taken, "watchlist_symbols": len(newest.expected)}
    text = (f"{len(taken)} of {len(closed)} sessions since {closed[0] if closed else '-'} have a snapshot; newest "
            f"{newest_time.astimezone(clock.NEW_YORK):%Y-%m-%d %H:%M} New York, {newest.taken} of "
            f"{len(newest.expected)} watchlist symbols")
    if today is not None and today.writing:
        return Check("options", Verdict.WARN, f"{text}; {today.line()}",
                     f"wait for the run to end; then {registry.command('status')} again", details)
    if today is not None and today.missing:
        if not today.stored:
            return Check("options", Verdict.WARN, f"{text}; {pending} has closed and has no snapshot yet",
                         f"{cmd.NIGHTLY} before midnight New York (or {cmd.OPTIONS})", details)
        return Check("options", Verdict.WARN, f"{text}; {today.line()}",
                     f"{cmd.NIGHTLY} before midnight New York (or {cmd.OPTIONS}: it fetches only the missing symbols)",
                     details)
    if lost_recent or partial:
        parts = ([f"lost (never taken): {day_list(lost_recent)}"] if lost_recent else []) + [
            f"{d}: {len(m)} symbols lost ({' '.join(m[:5])}{' ...' if len(m) > 5 else ''})" for d, m in partial.items()]
        return Check("options", Verdict.WARN, f"{text}; " + "; ".join(parts),
                     f"lost for good, a snapshot cannot be taken later: schedule {cmd.NIGHTLY} after each close "
                     + registry.in_checkout("(docs/runbooks/README.md, nightly)", "(its --help says when)"), details)
    if lost:
        text += f"; {len(lost)} older sessions lost"
    return Check("options", Verdict.OK, text, None, details)


def a2(inv: Inventory, now: datetime) -> Check:
    if not inv.bars:
        return Check("a2", Verdict.WARN, "no bars to compute from", cmd.OHLCV_BASE)
    missing = a2_missing(inv, now)
    partial = sorted(d for d, n in inv.a2.items() if d in inv.bars and n < inv.bars[d])
    details = {"dates": len(inv.a2), "first": min(inv.a2, default=None), "missing": missing, "partial": partial,
               "split_stale": {s.symbol: list(s.dates) for s in inv.split_stale}}
    text = f"{len(inv.a2)} dates computed" + (f" since {min(inv.a2)}" if inv.a2 else "")
    # Dates before A2 began are the indicator history, owed only once asked for: said, not warned.
    earlier = [d for d in inv.bars if d < min(inv.a2)] if inv.a2 and not inv.a2_history else []
    details["history_not_computed"] = len(earlier)
    history = (f"; the {len(earlier)} earlier dates with bars have none ({cmd.A2} --history computes them)"
               if earlier else "")
    # Rows computed before a split of their ticker was loaded: A2 (without --force) recomputes them.
    stale = (f"; computed before a split of theirs was loaded: {'; '.join(s.line() for s in inv.split_stale[:5])}"
             + (f" and {len(inv.split_stale) - 5} more tickers" if len(inv.split_stale) > 5 else "")
             if inv.split_stale else "")
    if missing and missing[0] == min(inv.bars):
        # The indicator history is owed (asked for, or no A2 at all): the nightly computes it.
        return Check("a2", Verdict.WARN, f"{text}; the indicator history is owed, {len(missing)} dates with bars "
                     f"and no A2: {day_list(missing)}{stale}", f"{cmd.NIGHTLY} (or {cmd.A2} --history)", details)
    if missing:
        return Check("a2", Verdict.WARN, f"{text}; dates with bars and no A2: {day_list(missing)}{stale}{history}",
                     f"{cmd.NIGHTLY} (or {cmd.dated(cmd.A2, missing)})", details)
    if stale:
        return Check("a2", Verdict.WARN, f"{text}{stale}{history}",
                     f"{cmd.NIGHTLY} (or {cmd.A2}: without --force it recomputes those tickers' dates)", details)
    if partial:
        return Check("a2", Verdict.WARN, f"{text}; fewer A2 rows than bars on {day_list(partial)}{history}",
                     cmd.dated(cmd.A2, partial) + " --force", details)
    return Check("a2", Verdict.OK, f"{text}, one row per bar{history}", None, details)


def a3(conn: psycopg.Connection, inv: Inventory, now: datetime) -> Check:
    """Dates with a snapshot and no A3; over the recent sessions, A3 per symbol against each
    symbol's chain of the day (stale when computed from another one), INVALID counted."""
    missing = a3_missing(inv)
    recent = [d for d in sessions.closed_sessions(clock.ny_date_of(now) - timedelta(days=2 * LOST_RECENT_SESSIONS),
                                                  now)[-LOST_RECENT_SESSIONS:] if d in inv.snapshots]
    days = [a3_day(conn, d) for d in recent if d not in missing]
    stale = {str(d.day): [*d.stale, *d.uncomputed] for d in days if d.due}
    invalid = {str(d.day): d.invalid for d in days if d.invalid}
    computable = snapshot_days(inv)
    details = {"dates": len(inv.a3), "snapshot_days": len(computable), "missing": missing, "stale": stale,
               "invalid": invalid}
    if not computable:
        return Check("a3", Verdict.OK, "no snapshots to compute from", None, details)
    text = f"{len(computable) - len(missing)} of {len(computable)} snapshot days computed"
    if invalid:
        text += f"; INVALID (no usable chain): {', '.join(f'{n} on {d}' for d, n in invalid.items())}"
    due = sorted({*missing, *(date.fromisoformat(d) for d in stale)})
    if due:
        parts = ([f"missing {day_list(missing)}"] if missing else []) + [
            f"{len(s)} symbols on {d} computed before their chain of the day" for d, s in stale.items()]
        return Check("a3", Verdict.WARN, f"{text}; " + "; ".join(parts),
                     f"{cmd.NIGHTLY} (or {cmd.dated(cmd.A3, due)})", details)
    return Check("a3", Verdict.OK, text, None, details)


def _stop_stuck(job: str) -> str:
    """A run 'running' for hours whose process is alive: look at it, stop it (recorded), rerun."""
    return (f"{job} is still alive after hours: find it (SELECT process_host, process_pid FROM ingest_runs WHERE "
            f"status = 'running'), stop it with kill <pid> (recorded as interrupted), then "
            f"{cmd.BY_JOB.get(job, cmd.NIGHTLY)}")


def runs(conn: psycopg.Connection, abandoned: dict[str, int]) -> Check:
    """The last run of each job; ``abandoned``: the rows ``report`` found dead and marked so."""
    # started_at/finished_at are wall-clock (real durations); clock_* are KapMan's clock beside them.
    rows = conn.execute("""
        SELECT DISTINCT ON (job) job, status, coalesce(clock_started_at, started_at), started_at,
               extract(epoch FROM finished_at - started_at), error
        FROM public.ingest_runs ORDER BY job, started_at DESC""").fetchall()
    details: dict[str, Any] = {}
    bad: list[str] = []
    fixes: list[str] = []
    wall = datetime.now(UTC)
    for job, status, started, wall_started, seconds, error in rows:
        details[job] = {"status": status, "started": started, "error": error,
                        "seconds": None if seconds is None else round(float(seconds), 1)}
        stuck = status == "running" and wall - wall_started > RUN_STUCK
        if status in ("partial", "failed", "interrupted", "abandoned") or stuck:
            bad.append(f"{job} {'stuck running' if stuck else status}")
            fixes.append(_stop_stuck(job) if stuck else cmd.BY_JOB.get(job, cmd.NIGHTLY))
    if abandoned:
        details["abandoned_now"] = abandoned
    if not rows:
        return Check("runs", Verdict.WARN, "no run recorded yet", cmd.NIGHTLY, details)
    text = "; ".join(f"{job} {d['status']} {d['started'].astimezone(clock.NEW_YORK):%m-%d %H:%M}"
                     + (f" {d['seconds']:.0f}s" if d["seconds"] is not None else "")
                     for job, d in details.items() if job != "abandoned_now")
    if bad:
        return Check("runs", Verdict.WARN, f"last runs: {text}; needs attention: {', '.join(bad)}",
                     " ; ".join(dict.fromkeys(fixes)), details)
    return Check("runs", Verdict.OK, f"last runs: {text}", None, details)


#: How close to leaving the window an unarchived snapshot may come before status fails: a month of
#: nightlies to mend the archive before the retention policy drops what nothing fetches again.
RETENTION_NOTICE = timedelta(days=30)


def _retention_reach(conn: psycopg.Connection, oldest: datetime | None, now: datetime,
                     text: str) -> tuple[Verdict, str]:
    """WARN, or FAIL when the retention policy (scheduled on the server's clock, which KapMan cannot
    hold back) drops the oldest unarchived snapshot within ``RETENTION_NOTICE``.  KapMan's own
    retention keeps such a snapshot; the line says which applies."""
    window = {w.table: w for w in retention.windows(conn)}.get("options_chains")
    if oldest is None or window is None:
        return Verdict.WARN, text
    leaves = oldest + window.drop_after
    when = (f"the oldest ({clock.ny_date_of(oldest)}) leaves the {window.drop_after.days}-day window on "
            f"{clock.ny_date_of(leaves)}")
    if window.retention_mode == "policy" and lifecycle.read_clock(conn).policies_scheduled:
        if leaves - now <= RETENTION_NOTICE:
            return Verdict.FAIL, f"{text}; {when}, when the retention policy drops it for good"
        return Verdict.WARN, f"{text}; {when}, when the retention policy drops it"
    return Verdict.WARN, f"{text}; {when}" + ("; KapMan's retention keeps it until it is archived"
                                              if leaves <= now else "")


def archive(conn: psycopg.Connection, settings: Settings | None, now: datetime | None = None) -> Check | None:
    """Stored snapshots the options archive lacks: what a repave would lose for good."""
    from kapman.archive import count_snapshots, warehouse  # the archive's modules load only here

    try:
        census = count_snapshots(warehouse.reading(conn, settings), conn)
    except KapManError as exc:
        return Check("archive", Verdict.WARN, f"the options archive cannot be listed: {exc.message}", exc.hint)
    details = {"location": census.location, "stored": census.stored, "archived": census.archived,
               "not_archived": census.stored_not_archived, "held_by_others": list(census.held_by_others)}
    if census.held_by_others:     # --archive-only alone would refuse to overwrite their manifests
        held = "those snapshots" if census.held_count == census.stored_not_archived else f"{census.held_count} of them"
        return Check("archive", Verdict.WARN,
                     f"{census.line()}: the archive holds {held} under warehouse {', '.join(census.held_by_others)}",
                     f"if {census.held_by_others[0]} is this database under another host name, set "
                     f"KAPMAN_WAREHOUSE={census.held_by_others[0]}; else give this warehouse an archive of its "
                     "own: set KAPMAN_ARCHIVE_DIR to a new directory (unset, it is archive/<warehouse>), then "
                     f"{cmd.OPTIONS} --archive-only", details)
    if census.stored_not_archived:
        verdict, text = _retention_reach(conn, census.oldest_not_archived, now or lifecycle.warehouse_now(conn),
                                         census.line())
        return Check("archive", verdict, text,
                     f"{cmd.OPTIONS} --archive-only (archives every stored snapshot the archive lacks; "
                     "no API call)", details)
    return Check("archive", Verdict.OK, census.line(), None, details)


def report(conn: psycopg.Connection, now: datetime | None = None, settings: Settings | None = None,
           *, with_archive: bool = True) -> StatusReport:
    """Every check, in the order a reader fixes them: schema first, runs last.  The clock is the
    warehouse's (``lifecycle.warehouse_now``: KAPMAN_NOW, else the frozen clock the database
    follows, else real time), for every check alike."""
    now = now or lifecycle.warehouse_now(conn)
    first = schema(conn, now)
    if first.verdict is Verdict.FAIL and not first.details:
        return StatusReport(now, [first])
    # before any check reads the ledger: a run killed without a word is not "still writing" its snapshot
    abandoned = ledger_runs.resolve_abandoned(conn)
    inv = take(conn, window_start(conn, now))
    checks = [first, tickers(conn, now), ohlcv(inv, now), ledger(inv), options(conn, inv, now), a2(inv, now),
              a3(conn, inv, now)]
    stored = archive(conn, settings, now) if with_archive and inv.snapshots else None
    return StatusReport(now, [*checks, *([stored] if stored else []), runs(conn, abandoned)])
