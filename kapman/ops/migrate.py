"""The in-place schema upgrade as a step: ``kapman.db.upgrade`` with its summary and ledger row.

Recorded once the migrations are in (one of them may change the ledger table itself)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from kapman import clock
from kapman.config import Settings
from kapman.db import runs
from kapman.db.upgrade import UpgradeResult, upgrade
from kapman.execute import Context, Definition, execute
from kapman.progress import Progress
from kapman.step import StepResult


@dataclass(frozen=True)
class MigrateParams:
    def validate(self) -> None:
        return None


@dataclass
class MigrateDetails:
    database: str = ""
    applied: list[str] = field(default_factory=list)
    migrations: int = 0
    fingerprint: str = ""
    checks: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def run(settings: Settings, params: MigrateParams, progress: Progress | None = None) -> StepResult[MigrateDetails]:
    return execute("migrate", settings, params, progress)


def _body(ctx: Context, params: MigrateParams) -> None:
    started_wall, started_clock = datetime.now(UTC), clock.now()
    done = upgrade(ctx.url)
    describe_result(ctx.result, done)
    if done.applied:
        runs.record_after(ctx.url, "migrate", {"db_url": ctx.url}, ctx.result, started_wall, started_clock)


STEP = Definition(MigrateParams, _body, details=MigrateDetails, ledger=False)


def describe_result(result: StepResult[MigrateDetails], done: UpgradeResult) -> None:
    applied = [m.filename for m in done.applied]
    result.done = len(applied)
    if applied:
        checks = len(done.report.checks) if done.report else 0
        result.headline = (f"upgraded {done.database} in place: applied {', '.join(applied)}; {done.migrations} "
                           f"migrations, {checks} checks passed, fingerprint {done.fingerprint[:16]}, the same "
                           "as a fresh rebuild's; no data touched")
    else:
        result.headline = (f"{done.database} is up to date: {done.migrations} migrations applied, fingerprint "
                           f"{done.fingerprint[:16]}")
    for note in done.notes:
        result.note(note)
    result.details = MigrateDetails(
        database=done.database, applied=applied, migrations=done.migrations, fingerprint=done.fingerprint,
        checks={c.name: c.ok for c in done.report.checks} if done.report else {})
