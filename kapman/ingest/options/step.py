"""The options step on the step contract: ``run(settings, params, progress) -> StepResult``.

It owns its connections and its API client: it resolves the watchlist scope, asks the server
what time it is (``snapshot.decide``: the live API's clock, or the sandbox's replay rules), then
runs the pipeline, recorded in the run ledger.

Between a session's close and midnight New York a run without ``--symbols`` completes the
session's snapshot: it fetches only the symbols with no chain of the session yet (never stored,
or failed in an earlier run), under its own snapshot time, so a rerun never takes a second
snapshot of what is already stored (``kapman.ops.inventory.options_day``).  ``--symbols`` takes
the symbols named, stored or not; ``--snapshot-time`` replays a whole run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from kapman import clock
from kapman.config import REQUEST_DEADLINE_RANGE, RUN_DEADLINE_RANGE, Settings
from kapman.db import runs
from kapman.errors import UsageError
from kapman.execute import Context, Definition, execute
from kapman.ingest.options.fetch import CONCURRENCY_RANGE
from kapman.ingest.options.pipeline import ingest_options, plan_options
from kapman.ingest.options.report import OptionsResult, archive_outcome
from kapman.ingest.options.snapshot import decide
from kapman.ingest.options.workers import WORKERS_RANGE, default_workers
from kapman.ingest.watchlist_scope import Scope, resolve_scope
from kapman.ops import inventory, lock, sessions
from kapman.params import in_range
from kapman.progress import Progress
from kapman.step import StepResult

if TYPE_CHECKING:
    from kapman.archive.live import LiveExport


@dataclass(frozen=True)
class OptionsParams:
    symbols: list[str] | None = None  # None: every active watchlist symbol
    concurrency: int = 4
    workers: int | None = None  # None: default_workers()
    snapshot_time: str | None = None  # a replay's ISO time (sandbox only); None: now
    dry_run: bool = False
    deadline: float | None = None  # seconds the run may fetch for; None: OPTIONS_RUN_DEADLINE
    request_deadline: float | None = None  # seconds per request; None: POLYGON_REQUEST_DEADLINE
    archive: bool = True  # archive what the run stored (kapman.archive); False: --no-archive
    archive_only: bool = False  # fetch nothing: archive every stored snapshot the archive lacks

    def validate(self) -> None:
        """Every number within its range, or one line that gives the range."""
        if self.archive_only and (not self.archive or self.dry_run or self.symbols is not None
                                  or self.snapshot_time is not None):
            raise UsageError("--archive-only takes none of --no-archive, --dry-run, --symbols, --snapshot-time")
        in_range("--concurrency", self.concurrency, CONCURRENCY_RANGE)
        in_range("--workers", self.workers, WORKERS_RANGE)
        in_range("--deadline", self.deadline, RUN_DEADLINE_RANGE)
        in_range("--request-deadline", self.request_deadline, REQUEST_DEADLINE_RANGE)


def run(settings: Settings, params: OptionsParams, progress: Progress | None = None) -> StepResult[OptionsResult]:
    return execute("options", settings, params, progress)


def _body(ctx: Context, params: OptionsParams) -> StepResult[Any]:
    settings = ctx.settings
    if params.archive_only:
        return _archived(_catch_up(settings, everything=True), "every stored snapshot checked against the archive")
    scope = resolve_scope(ctx.conn, params.symbols)
    ctx.conn.commit()   # the run writes over connections of its own; none waits on this one
    workers = default_workers() if params.workers is None else params.workers
    deadline = params.deadline if params.deadline is not None else settings.options_run_deadline
    # The urllib3 pool holds a connection per fetch thread, so no thread waits for a socket.
    client = ctx.client(pool_size=params.concurrency,
                        request_deadline=params.request_deadline or settings.polygon_request_deadline)
    completing = params.symbols is None and params.snapshot_time is None
    session = sessions.snapshot_session(clock.now()) if completing else None
    if session is not None:    # one run completes a session at a time (kapman.ops.lock)
        ctx.enter(lock.completing_session(ctx.url, session))
    # By KapMan's clock first, so the server's clock is asked about a symbol still to fetch.
    probe, complete = _still_missing(ctx.conn, scope, clock.now()) if completing else (scope, None)
    if complete is not None:
        return _caught_up(settings, params, complete)
    snapshot = decide(params.snapshot_time, client.chain_clock(next(iter(probe.tickers))), settings.polygon_base_url)
    if completing:
        scope, complete = _still_missing(ctx.conn, scope, snapshot)
        if complete is not None:
            return _caught_up(settings, params, complete)
    if params.dry_run:
        return plan_options(scope, snapshot, params.concurrency, workers).step_result()
    # Option snapshots cannot be fetched again: the run archives what it stores as it goes.
    return ingest_options(
        ctx.url, client, scope, snapshot, concurrency=params.concurrency, workers=workers,
        progress=ctx.progress, deadline=deadline, args=asdict(params),
        archive=_archive(settings, snapshot) if params.archive else None, ledger=ctx.ledger,
    ).step_result()


#: A dry run records nothing; a run's row gets its snapshot time (the server's clock decides it)
#: and its resolved scope once the body knows them (``runs.Run.decided``).
STEP = Definition(OptionsParams, _body, ledger=lambda params: not params.dry_run,
                  planned=lambda settings: OptionsParams())


@dataclass
class Complete:
    """The details of a run that found its session's snapshot complete and fetched nothing."""

    complete: str   # the session (New York date)
    archive: Any = None  # kapman.archive.ExportReport of the catch-up it still ran, if any

    def as_dict(self) -> dict[str, Any]:
        return {"complete": self.complete, **({"archive": self.archive.as_dict()} if self.archive else {})}


@dataclass
class Archived:
    """The details of an ``--archive-only`` run: its archive report."""

    archive: Any  # kapman.archive.ExportReport

    def as_dict(self) -> dict[str, Any]:
        return {"archive": self.archive.as_dict()}


def _catch_up(settings: Settings, *, everything: bool = False) -> Any:
    from kapman.archive import export_snapshots  # pyarrow loads only for a run that archives

    return export_snapshots(settings, [], everything=everything)


def _archived(report: Any, what: str) -> StepResult[Archived]:
    """A result of archive work alone: ok, or partial when the archive could not be written."""
    result = StepResult("options", unit="snapshots", done=len(report.caught_up), details=Archived(report))
    result.headline = f"{what}: {report.examined} examined, {len(report.caught_up)} archived now"
    archive_outcome(result, report)
    return result


def _caught_up(settings: Settings, params: OptionsParams, complete: StepResult[Complete]) -> StepResult[Complete]:
    """A complete session still catches up what earlier runs left unarchived (an archive that failed
    this evening, an archive moved or emptied), as every run that fetches does."""
    if not params.archive:
        return complete
    report = _catch_up(settings)
    assert complete.details is not None
    complete.details.archive = report
    if report.caught_up or not report.ok:
        archive_outcome(complete, report)
    return complete


def _still_missing(conn: psycopg.Connection, scope: Scope,
                   snapshot: datetime) -> tuple[Scope, StepResult[Complete] | None]:
    """Within a session's snapshot window, the scope narrowed to the symbols without a chain of the
    session; a result instead when there is none left (or another run is writing it).  Commits: no
    transaction of the step's connection stays open while the run fetches."""
    session = sessions.snapshot_session(snapshot)
    if session is None:
        return scope, None
    runs.resolve_abandoned(conn)
    day = inventory.options_day(conn, session, scope.tickers)
    conn.commit()
    if day.writing:
        raise UsageError(f"an options run is still writing {session}'s snapshot (run {day.writing[0]}); this one "
                         "did nothing", hint="wait for it to end; a run after it fetches whatever it missed")
    done = set(day.stored) | day.empty
    todo = {s: i for s, i in scope.tickers.items() if s not in done}
    if not todo:
        result = StepResult("options", unit="symbols", done=day.taken, details=Complete(str(session)))
        result.headline = (f"{session}'s snapshot is complete: {day.taken} of {len(day.expected)} symbols stored, "
                           "nothing to fetch (--symbols takes some again)")
        return scope, result
    return Scope(tickers=todo, skipped=scope.skipped), None


def _archive(settings: Settings, snapshot: datetime) -> LiveExport:
    from kapman.archive import archive_run  # pyarrow loads only for a run that archives

    return archive_run(settings, snapshot)
