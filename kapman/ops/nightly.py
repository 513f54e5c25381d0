"""The nightly: work out what is due by KapMan's clock and the NYSE calendar, and do it in order.

Tickers, splits and watchlists (once per New York day), OHLCV for every trading day of the
retention window whose flat file is not loaded or was republished, the options snapshot of
today's session from its close to midnight New York for every watchlist symbol without a chain
of the session yet (never fetched, or failed: a nightly killed half-way, a transient error, are
completed by the next one), A2 for every date with bars and no A2 (and again, with --force, for
every computed date from a republished day or a day loaded late on, since their look-back
windows hold that day's bars; again, without --force, each ticker's dates computed before a split
of it was loaded, the splits this nightly loads included; on a warehouse without any A2, the
indicator history: A2's --history, unless --no-history), A3 for every date with a snapshot and no
A3, or whose chains changed after A3 ran (fetched later, or rewritten under the same snapshot
time).  What is done per day is ``kapman.ops.inventory``'s answer, the same status and the
warehouse page read.
Idempotent: run it twice and the second run finds nothing due.  A snapshot, or a symbol of one,
that was not taken by its session's midnight is reported lost by the next nightly, never taken
late under its date.  A snapshot an options run is still writing is left to it: no A3 on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from kapman import clock, registry, signals
from kapman.config import Settings
from kapman.db import lifecycle, runs
from kapman.db.connect import connect
from kapman.db.errors import wrap
from kapman.errors import ConfigError, DatabaseError, KapManError, ProviderError, UsageError
from kapman.execute import Context, Definition, execute
from kapman.ops import inventory, lock, sessions
from kapman.ops.checks import day_list, span
from kapman.ops.inventory import (
    Inventory,
    a2_first,
    a2_missing,
    a2_split_stale,
    a3_due,
    options_day,
    split_stale_dates,
    take,
    window_start,
)
from kapman.progress import Progress
from kapman.providers.flatfiles import source_from_settings
from kapman.step import StepResult

log = logging.getLogger(__name__)

#: Lost snapshots are reported by the nightly run after the loss; with no earlier nightly, the
#: sessions this far back are looked at.
LOST_LOOKBACK_SESSIONS = 10


@dataclass
class Task:
    step: str
    reason: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    now: datetime
    tasks: list[Task] = field(default_factory=list)
    lost: list[date] = field(default_factory=list)          # snapshots never taken, newly lost
    lost_symbols: dict[date, list[str]] = field(default_factory=dict)  # symbols a session's snapshot lacks for good
    unpublished: list[date] = field(default_factory=list)   # files due and not on the source
    waiting: list[str] = field(default_factory=list)        # work left to a run still in progress
    unlisted: str | None = None     # why the flat-file source could not be listed (OHLCV not planned)

    def render(self) -> str:
        ny = self.now.astimezone(clock.NEW_YORK)
        lines = [f"nightly plan as of {ny:%Y-%m-%d %H:%M} New York (KapMan's clock):"]
        lines += [f"  {t.step:<10} {t.reason}" for t in self.tasks] or ["  nothing is due"]
        if self.unlisted:
            lines.append(f"  failed     {self.unlisted}")
        if self.lost:
            lines.append(f"  lost       option snapshots never taken: {day_list(self.lost)} (cannot be taken now)")
        for day, symbols in self.lost_symbols.items():
            lines.append(f"  lost       {day}: {len(symbols)} symbols never stored ({' '.join(symbols[:10])}"
                         f"{' ...' if len(symbols) > 10 else ''}; cannot be taken now)")
        lines += [f"  waiting    {w}" for w in self.waiting]
        if self.unpublished:
            lines.append(f"  waiting    flat files due and not published yet: {day_list(self.unpublished)}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"now": self.now, "tasks": [{"step": t.step, "reason": t.reason, **t.args} for t in self.tasks],
                "lost_snapshots": self.lost, "lost_symbols": {str(d): s for d, s in self.lost_symbols.items()},
                "unpublished_files": self.unpublished, "waiting": self.waiting, "flat_files_error": self.unlisted}


# -- planning ------------------------------------------------------------------------------------

def _done_today(conn: psycopg.Connection, step: str, today: date) -> bool:
    """Whether ``step`` ran to success on ``today`` (New York), by KapMan's clock."""
    row = conn.execute("SELECT max(coalesce(clock_finished_at, finished_at)) FROM public.ingest_runs "
                       "WHERE job = ANY(%s) AND status IN ('ok', 'nothing-to-do')",
                       (list(registry.get(step).jobs),)).fetchone()
    return bool(row and row[0] and clock.ny_date_of(row[0]) >= today)


def _last_nightly(conn: psycopg.Connection) -> datetime | None:
    """When the previous nightly that reported its losses started: one that ran to its end (no
    error recorded), not one interrupted, abandoned or stopped by an error before its report."""
    row = conn.execute("SELECT max(coalesce(clock_started_at, started_at)) FROM public.ingest_runs "
                       "WHERE job = 'nightly' AND status <> 'running' AND error IS NULL").fetchone()
    return row[0] if row else None


def _newly_over(conn: psycopg.Connection, days: list[date], closed: list[date]) -> list[date]:
    """Of ``days`` (sessions whose window is over), those that closed since the previous nightly."""
    previous = _last_nightly(conn)
    if previous is None:
        return [d for d in days if d in set(closed[-LOST_LOOKBACK_SESSIONS:])]
    return [d for d in days if sessions.snapshot_window_end(d) > previous]


def lost_snapshots(conn: psycopg.Connection, inv: Inventory, now: datetime) -> list[date]:
    """Sessions whose snapshot window closed without a snapshot, since the previous nightly."""
    if not inv.snapshots:
        return []
    closed = sessions.closed_sessions(min(inv.snapshots), now)
    lost = [d for d in closed if d not in inv.snapshots and sessions.snapshot_window_over(d, now)]
    return _newly_over(conn, lost, closed)


def lost_symbols(conn: psycopg.Connection, inv: Inventory, now: datetime) -> dict[date, list[str]]:
    """Symbols missing from sessions with a snapshot whose window closed since the previous nightly."""
    if not inv.snapshots:
        return {}
    closed = sessions.closed_sessions(min(inv.snapshots), now)
    over = [d for d in closed if d in inv.snapshots and sessions.snapshot_window_over(d, now)]
    out = {}
    for day in _newly_over(conn, over, closed):
        missing = options_day(conn, day).missing
        if missing:
            out[day] = missing
    return out


def plan(settings: Settings, conn: psycopg.Connection, now: datetime | None = None, *,
         history: bool = True) -> Plan:
    """What is due ``now`` (default: the warehouse's clock, ``lifecycle.warehouse_now``).
    ``history=False`` (``--no-history``): A2 neither starts nor resumes the indicator history."""
    now = now or lifecycle.warehouse_now(conn)
    today = clock.ny_date_of(now)
    result = Plan(now)
    inv = take(conn, window_start(conn, now))
    has_tickers = conn.execute("SELECT EXISTS (SELECT 1 FROM public.tickers)").fetchone()[0]  # type: ignore[index]
    # Once per New York day each; splits and watchlists after a new universe, and again until they
    # succeed (one that failed is not left until tomorrow because the tickers were refreshed).
    universe = not has_tickers or not _done_today(conn, "tickers", today)
    if universe:
        result.tasks.append(Task("tickers", "refresh the ticker universe (once per New York day)"))
    if universe or not _done_today(conn, "splits", today):
        result.tasks.append(Task("splits", "splits of the retention window, for A2's adjustment"))
    if universe or not _done_today(conn, "watchlists", today):
        result.tasks.append(Task("watchlists", f"reconcile {settings.watchlists_dir}/*.txt with the new universe"))

    new, republished = _plan_ohlcv(settings, inv, now, result)

    session = sessions.snapshot_session(now)
    reconciling = any(t.step == "watchlists" for t in result.tasks)
    writing = False
    if session is not None:
        today_options = options_day(conn, session)
        writing = bool(today_options.writing)
        if writing:
            result.waiting.append(f"an options run is still writing {session}'s snapshot (run "
                                  f"{today_options.writing[0]}): the next nightly completes it and computes its A3")
        elif today_options.missing or (reconciling and not today_options.expected):
            result.tasks.append(Task("options", _options_reason(today_options, session)))
    result.lost = lost_snapshots(conn, inv, now)
    result.lost_symbols = lost_symbols(conn, inv, now)

    a2 = _a2_task(inv, now, new, republished, history)
    if a2 is not None:
        result.tasks.append(a2)
    recent = sessions.closed_sessions(today - timedelta(days=2 * LOST_LOOKBACK_SESSIONS), now)
    a3_dates = a3_due(conn, inv, recent[-LOST_LOOKBACK_SESSIONS:])
    if session is not None and any(t.step == "options" for t in result.tasks):
        a3_dates = sorted({*a3_dates, session})
    if writing:
        a3_dates = [d for d in a3_dates if d != session]
    if a3_dates:
        result.tasks.append(Task("a3", f"{len(a3_dates)} dates with a snapshot and no A3, or chains written after "
                                 f"their A3 ({span(a3_dates)})", {"dates": a3_dates}))
    return result


def _plan_ohlcv(settings: Settings, inv: Inventory, now: datetime, result: Plan) -> tuple[list[date], list[date]]:
    """OHLCV: every file of the window not in the ledger under its current ETag; the due days the
    source lacks go to ``result.unpublished``.  Returns the new and the republished days.  A source
    that cannot be listed (S3 down, its keys refused) is said in ``result.unlisted`` and plans no
    OHLCV: the rest of the plan stands, since a session's snapshot cannot wait for the flat files."""
    try:
        refs = source_from_settings(settings).list_files(inv.start, clock.ny_date_of(now))
    except (ConfigError, ProviderError) as exc:
        result.unlisted = f"the flat files cannot be listed: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
        return [], []
    etags = inv.ledger_etags()
    new = sorted({r.day for r in refs if r.key not in etags})
    republished = sorted({r.day for r in refs if r.key in etags and etags[r.key] != r.etag})
    todo = sorted({*new, *republished})
    if todo:
        parts = [f"{len(new)} new ({day_list(new, 3)})" if new else "",
                 f"{len(republished)} republished ({day_list(republished, 3)})" if republished else ""]
        result.tasks.append(Task("ohlcv", "flat files " + ", ".join(p for p in parts if p),
                                 {"start": todo[0], "end": todo[-1]}))
    # Due days the source lacks, after the first day it or the table has (history before that
    # simply does not exist there).
    listed = {r.day for r in refs}
    oldest = min([*inv.bars, *listed], default=None)
    result.unpublished = [d for d in sessions.ohlcv_due_days(inv.start, now)
                          if oldest is not None and d > oldest and d not in inv.bars and d not in listed]
    return new, republished


def _a2_task(inv: Inventory, now: datetime, new: list[date], republished: list[date], history: bool) -> Task | None:
    """A warehouse without any A2 (a repave followed by nightlies) is owed the indicator history:
    A2's ``--history``, which takes every date with bars when it runs, after this nightly's OHLCV,
    and is recorded as such, so every later nightly resumes it (``inventory.a2_first``).  Else A2
    from where it began (``--no-history`` on a warehouse without any: the newest due day) for every
    date with bars and no A2, the new days included."""
    if history and not inv.a2 and (inv.bars or new):
        now_with_bars = f"; {len(inv.bars)} dates with bars now, {span(sorted(inv.bars))}" if inv.bars else ""
        return Task("a2", f"the indicator history: every date of the retention window with bars (no A2 yet"
                          f"{now_with_bars})", {"history": True})
    a2_from = a2_first(inv, now, history=history)
    a2_dates = sorted({*a2_missing(inv, now, history=history),
                       *(d for d in new if a2_from is not None and d >= a2_from)})
    # A republished day changes the bars in the look-back window of every date from it on; so does a
    # day loaded after later dates were computed without it (its file failed or came out late).
    late = [d for d in new if inv.a2 and d < max(inv.a2)]
    changed = sorted({*republished, *late})
    stale = sorted(d for d in inv.a2 if changed and d >= changed[0])
    # A ticker's rows computed before a split of it was loaded: A2 without --force recomputes them.
    split_late = split_stale_dates(inv.split_stale)
    if stale:
        a2_dates = sorted({*a2_dates, *stale, *split_late})
        why = " or ".join(w for w, days in (("republished", republished), ("late", late)) if days)
        return Task("a2", f"{len(a2_dates)} dates, {len(stale)} of them recomputed after a {why} file "
                          f"({span(a2_dates)})", {"dates": a2_dates, "force": True})
    if split_late:
        return _split_task(inv.split_stale, a2_dates)
    if a2_dates:
        return Task("a2", f"{len(a2_dates)} dates with bars and no A2 ({span(a2_dates)})", {"dates": a2_dates})
    return None


def _split_task(stale: list[inventory.SplitStale], a2_dates: list[date]) -> Task:
    """A2 for ``a2_dates`` and the dates of the tickers whose rows were computed before a split of
    theirs was loaded (``inventory.a2_split_stale``): only those tickers' rows are recomputed there."""
    late = split_stale_dates(stale)
    dates = sorted({*a2_dates, *late})
    names = "; ".join(s.line() for s in stale[:5]) + (" ..." if len(stale) > 5 else "")
    return Task("a2", f"{len(dates)} dates, {len(late)} of them recomputed for the tickers computed before a split "
                      f"of theirs was loaded ({names})", {"dates": dates})


def _options_reason(day: inventory.OptionsDay, session: date) -> str:
    if not day.expected:
        return f"snapshot of {session}'s session (the watchlist symbols), before midnight New York"
    if not day.stored:
        return f"snapshot of {session}'s session ({len(day.expected)} watchlist symbols), before midnight New York"
    return (f"complete {session}'s snapshot: {len(day.missing)} of {len(day.expected)} symbols without a chain "
            f"yet ({' '.join(day.missing[:5])}{' ...' if len(day.missing) > 5 else ''}), before midnight New York")


# -- doing ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NightlyParams:
    dry_run: bool = False   # print the plan and change nothing
    history: bool = True    # False: A2 neither starts nor resumes the indicator history (--no-history)

    def validate(self) -> None:
        """Nothing to check: the plan decides every step's parameters."""


@dataclass
class NightlyDetails:
    plan: Plan | None = None
    steps: dict[str, StepResult[Any]] = field(default_factory=dict)   # the result of each step run
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        if self.plan is None:
            return {}
        if self.dry_run:
            return {"plan": self.plan.as_dict(), "plan_text": self.plan.render()}
        return {"plan": self.plan.as_dict(), "steps": {name: sub.as_dict() for name, sub in self.steps.items()}}


#: Pauses before the options step runs again for the symbols that failed on something passing (a
#: 5xx, a timeout), while the session's window is open: the evening nightly is usually the only
#: run before midnight, after which a missing chain is lost.
OPTIONS_RETRY_WAITS: tuple[float, ...] = (60.0, 300.0)


def options_until_complete(settings: Settings, progress: Progress) -> StepResult[Any]:
    """The options step, then again (it fetches only what is still missing) after each pause of
    ``OPTIONS_RETRY_WAITS`` while symbols failed on something passing and the window is open."""
    from kapman.ingest.options.report import OptionsResult
    from kapman.ingest.options.step import OptionsParams

    session = sessions.snapshot_session(clock.now())
    result: StepResult[Any] = execute("options", settings, OptionsParams(), progress)
    for pause in OPTIONS_RETRY_WAITS:
        retryable = result.details.retryable() if isinstance(result.details, OptionsResult) else []
        if not result.failures or not retryable or session is None:
            break
        log.info("nightly: options: %d symbols failed on something passing (%s); again in %.0f s",
                 len(retryable), " ".join(retryable[:10]), pause)
        time.sleep(pause)
        if sessions.snapshot_session(clock.now()) != session:    # midnight passed: lost, not taken late
            break
        again: StepResult[Any] = execute("options", settings, OptionsParams(), progress)
        if not isinstance(again.details, OptionsResult):     # another run fetched them meanwhile
            return again
        again.done += result.done
        again.written += result.written
        again.notes = [*result.notes, *again.notes, f"{len(retryable)} failed symbols fetched again"]
        result = again
    return result


def _run_task(settings: Settings, conn: psycopg.Connection, task: Task, progress: Progress,
              result: StepResult[NightlyDetails]) -> None:
    """One step, run as by hand (kapman.execute) with the parameters the plan decided; a failure is
    recorded and the next step still runs.  A2 and A3 take the dates the plan foresaw (the bars and
    the snapshot the steps before them were to add): asking the database again would cost a full
    inventory each on a full market."""
    log.info("nightly: %s: %s", task.step, task.reason)
    step = registry.get(task.step)
    planned = step.definition().planned
    assert planned is not None, f"{task.step} cannot be planned by the nightly"
    try:
        sub = (options_until_complete(settings, progress) if task.step == "options"
               else execute(step, settings, planned(settings, **task.args), progress))
    except (KapManError, psycopg.Error) as exc:
        error = wrap(exc, task.step) if isinstance(exc, psycopg.Error) else exc
        if isinstance(error, DatabaseError) and error.transient:
            raise error from exc    # the database is going away: stop; the next nightly resumes
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        result.fail(task.step, error.message)     # the other steps still run
        log.error("nightly: %s failed: %s", task.step, error.message)
        return
    sub.stop_clock()
    result.details.steps[task.step] = sub
    log.info("nightly: %s", sub.summary())
    if sub.failures:
        first = sub.failures[0]
        result.fail(task.step, f"{sub.failed_text()} (first {first.unit}: {first.reason})")
    else:
        result.done += 1
    result.written += sub.written


def run(settings: Settings, progress: Progress | None = None, *,
        dry_run: bool = False, history: bool = True) -> StepResult[NightlyDetails]:
    """The nightly step: the plan, then each task in order, under the nightly lock."""
    return execute("nightly", settings, NightlyParams(dry_run, history), progress)


@contextmanager
def _guard(url: str, params: NightlyParams) -> Iterator[None]:
    """Before anything is recorded: runs whose process is gone are resolved, the database's clock
    agrees with this shell's (a dry run plans by the database's clock, a sandbox's recorded one
    included; a warehouse on real time is not run by a replayed day's), and (to do the work) no
    other nightly runs."""
    with connect(url, autocommit=True) as conn:
        runs.resolve_abandoned(conn)
        recorded = lifecycle.read_clock(conn)
        # A stray KAPMAN_NOW against a warehouse that follows real time (the live API's snapshots)
        stray = recorded.mode == "real" and clock.away_from_real_time() and lifecycle.holds_live_snapshots(conn)
    if params.dry_run:     # what is due by the warehouse's clock (a sandbox's recorded one included)
        yield
        return
    if recorded.mode == "frozen" and not clock.is_frozen():
        raise UsageError(f"this database follows a frozen clock ({recorded.describe()}), this shell real time",
                         hint="set KAPMAN_NOW to the instant to run as (the sandbox prints it); "
                              "--dry-run shows what is due by the database's clock")
    if stray:
        raise UsageError(f"{clock.ENV_VAR}={clock.now():%Y-%m-%dT%H:%M:%SZ} in this shell, but this database "
                         "follows real time and holds option snapshots taken on it; nothing was done",
                         hint=f"unset {clock.ENV_VAR} (it replays market days on a sandbox database)")
    with lock.exclusive(url):
        yield


def _body(ctx: Context, params: NightlyParams) -> None:
    result: StepResult[NightlyDetails] = ctx.result
    todo = result.details.plan = plan(ctx.settings, ctx.conn, history=params.history)
    if params.dry_run:
        _dry_run(todo, result)
        return
    log.info("%s", todo.render())
    ran: list[Task] = []
    try:
        # in order, the A2 task the splits step may add (``_after_splits``) included
        while pending := [t for t in sorted(todo.tasks, key=lambda t: _ORDER[t.step])
                          if all(t is not r for r in ran)]:
            ran.append(pending[0])
            _run_task(ctx.settings, ctx.conn, pending[0], ctx.progress, result)
            if pending[0].step == "splits":
                _after_splits(ctx.conn, todo)
    except KeyboardInterrupt as exc:    # Ctrl-C, SIGTERM, SIGHUP: say so in the nightly's log
        done = [step for step, sub in result.details.steps.items() if not sub.failures]
        log.error("nightly: %s; steps done before it: %s; each step's committed work is kept and recorded "
                  "in ingest_runs; the next nightly resumes", signals.describe(exc), ", ".join(done) or "none")
        raise
    if todo.unlisted:
        result.fail("ohlcv", f"{todo.unlisted}; the next nightly loads what is due")
    # Losses and unpublished files are not steps of the run: named, not counted as failed steps.
    for day in todo.lost:
        result.fail(f"options {day}", "snapshot lost: the session closed and no snapshot was taken that day",
                    counted=False)
    for day, symbols in todo.lost_symbols.items():
        result.fail(f"options {day}", f"{len(symbols)} symbols lost: no chain stored by the session's midnight "
                                      f"({' '.join(symbols[:20])}{' ...' if len(symbols) > 20 else ''})",
                    counted=False)
    for day in todo.unpublished:
        result.fail(f"ohlcv {day}", "the flat file is due (11:00 New York the next day) and not published "
                                    "yet; the next nightly loads it", counted=False)
    result.headline = _headline(todo, result)


def _dry_run(todo: Plan, result: StepResult[NightlyDetails]) -> None:
    """A dry run's units are the steps it planned; OHLCV unplanned (the flat files cannot be listed)
    is one that failed: exit 1 beside others planned, 2 when nothing else is due, as the run would."""
    result.details.dry_run = True
    result.done = len(todo.tasks)
    if todo.unlisted:
        result.fail("ohlcv", todo.unlisted)
    planned = ", ".join(t.step for t in todo.tasks) or "nothing is due"
    result.headline = f"dry run, nothing changed: {planned}" + ("; failed: ohlcv" if todo.unlisted else "")


def _after_splits(conn: psycopg.Connection, todo: Plan) -> None:
    """The splits just loaded may date A2 rows computed before them (a split published late): with
    no A2 task planned, one is added for them.  A planned A2 without --force finds them itself; a
    forced one (after a late or republished file) recomputes only its dates, so they are added."""
    planned = next((t for t in todo.tasks if t.step == "a2"), None)
    if planned is not None and not planned.args.get("force"):
        return
    stale = a2_split_stale(conn, window_start(conn, todo.now))
    if not stale:
        return
    if planned is None:
        todo.tasks.append(_split_task(stale, []))
    else:
        planned.args["dates"] = sorted({*planned.args["dates"], *split_stale_dates(stale)})


#: The steps run in runbook order (the registry's), whatever order the plan listed them in.
_ORDER = {step.name: n for n, step in enumerate(registry.STEPS)}

STEP = Definition(NightlyParams, _body, details=NightlyDetails, ledger=lambda p: not p.dry_run, guard=_guard)


def _headline(todo: Plan, result: StepResult[NightlyDetails]) -> str:
    """The steps done and those that failed; the losses and unpublished files follow on the summary
    line (``StepResult.failed_text``) and one line each below it."""
    steps = result.details.steps
    done = [t.step for t in todo.tasks if t.step in steps and not steps[t.step].failures]
    failed = [f.unit for f in result.failures if f.counted]
    if not todo.tasks:
        return "nothing was due" + (f"; failed: {', '.join(failed)}" if failed else "")
    text = f"{len(done)} of {len(todo.tasks)} steps done ({', '.join(done) or 'none'})"
    return text + (f"; failed: {', '.join(failed)}" if failed else "")
