"""Runbook Step 2 as a step: the rebuild (``kapman.db.rebuild``) with its confirmation, the
archive's census of what a repave keeps, and the ledger row it writes once the new database exists.

The step sits above both the database layer and the archive, so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import partial
from typing import Any

from kapman import clock
from kapman.archive import archived_snapshot_count
from kapman.config import NumberRange, Settings
from kapman.db import lifecycle, runs
from kapman.db.destruction import confirm
from kapman.db.rebuild import RebuildResult, rebuild
from kapman.execute import Context, Definition, execute
from kapman.params import in_range
from kapman.progress import Progress
from kapman.step import StepResult

ITERATIONS_RANGE = NumberRange(1, 100, integer=True)


@dataclass(frozen=True)
class RebuildParams:
    iterations: int = 1
    #: destroy a database that holds data without asking (no terminal: scripts, CI, the demo)
    yes: bool = False

    def validate(self) -> None:
        in_range("--iterations", self.iterations, ITERATIONS_RANGE)


@dataclass
class RebuildDetails:
    built: RebuildResult | None = None     # the whole report (kept out of --json and the ledger)
    warnings: list[str] = field(default_factory=list)
    database: str = ""
    migrations: list[str] = field(default_factory=list)
    fingerprint: str = ""
    iterations: int = 0
    lifecycle_mode: str = ""
    lifecycle_clock: str = ""
    server: str = ""
    checks: dict[str, bool] = field(default_factory=dict)
    destroyed: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "built"}


def run(settings: Settings, params: RebuildParams, progress: Progress | None = None) -> StepResult[RebuildDetails]:
    """Runbook Step 2 (see kapman.execute)."""
    return execute("rebuild", settings, params, progress)


def _body(ctx: Context, params: RebuildParams) -> None:
    """The old ledger goes with the old database, so the rebuild's own run is the first row of the
    new one's ``ingest_runs``, recorded once the database exists."""
    started_wall, started_clock = datetime.now(UTC), clock.now()
    result: StepResult[RebuildDetails] = ctx.result
    ctx.progress.start(params.iterations, "rebuilds", unit="rebuild")
    try:
        built = rebuild(ctx.url, iterations=params.iterations, confirm=partial(confirm, yes=params.yes),
                        progress=ctx.progress, archived=partial(archived_snapshot_count, settings=ctx.settings))
    finally:
        ctx.progress.close()
    describe_result(result, built)
    runs.record_after(ctx.url, "rebuild", {"iterations": params.iterations, "yes": params.yes, "db_url": ctx.url},
                      result, started_wall, started_clock)   # the run began before its database existed


STEP = Definition(RebuildParams, _body, details=RebuildDetails, ledger=False)


def describe_result(result: StepResult[RebuildDetails], built: RebuildResult) -> None:
    """Fill the step's result from what the rebuild did."""
    report = built.iterations[-1].report
    recorded = report.lifecycle_clock or lifecycle.Clock("real")
    loss = built.loss
    result.done = len(built.iterations)
    result.removed = sum(loss.rows.values()) if loss else 0
    result.headline = (f"rebuilt {built.database}: {len(built.migrations)} migrations, "
                       f"{len(report.checks)} checks passed, lifecycle={report.lifecycle_mode}, "
                       f"clock={recorded.mode}, fingerprint {built.fingerprint[:16]} identical "
                       f"across {len(built.iterations)} rebuild(s)")
    result.note(lifecycle.describe(report.lifecycle_mode, recorded))
    result.details = RebuildDetails(
        built=built, warnings=built.warnings, database=built.database,
        migrations=[m.filename for m in built.migrations], fingerprint=built.fingerprint,
        iterations=len(built.iterations), lifecycle_mode=report.lifecycle_mode, lifecycle_clock=recorded.mode,
        server=built.server.describe(), checks={c.name: c.ok for c in report.checks},
        destroyed=loss.as_dict() if loss and loss.holds_data else None)
