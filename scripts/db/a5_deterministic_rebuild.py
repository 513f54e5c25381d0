"""A5: drop and recreate the KapMan database, apply db/migrations, validate, fingerprint."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial

from kapman import cli
from kapman.config import bounded, mask_url
from kapman.db import lifecycle, runs
from kapman.db.connect import connect
from kapman.db.destruction import confirm
from kapman.db.rebuild import RebuildResult, rebuild

EXAMPLES = """
  python -m scripts.db.a5_deterministic_rebuild
  python -m scripts.db.a5_deterministic_rebuild --yes          # no terminal (scripts, CI): confirm up front
  python -m scripts.db.a5_deterministic_rebuild --iterations 3
  python -m scripts.db.a5_deterministic_rebuild --print-migrations --db-url postgresql://kapman:***@127.0.0.1:5432/kapman
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m scripts.db.a5_deterministic_rebuild",
                   "Destroy and rebuild the database from db/migrations (the A6 schema), validate "
                   "every runbook invariant and print the schema fingerprint. All data is lost: when the "
                   "database holds data it first says what (rows per table, option snapshots that cannot "
                   "be fetched again) and asks for the database name on a terminal; without a terminal "
                   "it needs --yes.",
                   EXAMPLES)
    p.add_argument("--iterations", type=bounded(1, 100, integer=True), default=1, metavar="N",
                   help="rebuild N times and require an identical fingerprint each time")
    p.add_argument("--print-migrations", action="store_true", help="list the migrations applied")
    p.add_argument("-y", "--yes", action="store_true",
                   help="destroy a database that holds data without asking (needed without a terminal)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    url = settings.require_database_url()
    started = datetime.now(UTC)
    clock_started = time.perf_counter()
    result = rebuild(url, iterations=args.iterations, confirm=partial(confirm, yes=args.yes))
    report = result.iterations[-1].report
    recorded = report.lifecycle_clock or lifecycle.Clock("real")
    if not args.quiet and not args.json:
        print(f"server: {result.server.describe()}")
        print(f"database: {mask_url(url)}")
        if args.print_migrations:
            for m in result.migrations:
                print(f"  {m.filename}  sha256:{m.checksum[:12]}")
        for n, it in enumerate(result.iterations, 1):
            print(f"rebuild {n}: fingerprint {it.fingerprint}  ({it.seconds:.2f}s)")
        for check in report.checks:
            print(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
        print(lifecycle.describe(report.lifecycle_mode, recorded))
    summary = {"database": result.database, "migrations": [m.filename for m in result.migrations],
               "fingerprint": result.fingerprint, "iterations": len(result.iterations),
               "lifecycle_mode": report.lifecycle_mode, "lifecycle_clock": recorded.mode,
               "server": result.server.describe(), "checks": {c.name: c.ok for c in report.checks},
               "destroyed": result.loss.as_dict() if result.loss and result.loss.holds_data else None}
    record_run(url, result, args={"iterations": args.iterations, "yes": args.yes, "db_url": mask_url(url)},
               started=started, seconds=time.perf_counter() - clock_started, summary=summary)
    cli.emit(args,
             f"rebuilt {result.database}: {len(result.migrations)} migrations, "
             f"{len(report.checks)} checks passed, lifecycle={report.lifecycle_mode}, clock={recorded.mode}, "
             f"fingerprint {result.fingerprint[:16]} identical across {len(result.iterations)} rebuild(s)",
             summary)
    return cli.EXIT_OK


def record_run(url: str, result: RebuildResult, *, args: dict[str, object], started: datetime,
               seconds: float, summary: dict[str, object]) -> None:
    """The rebuild's run is the first row of the new database's ledger (the old ledger is gone)."""
    with connect(url) as conn:
        run_id = runs.start_run(conn, "rebuild", args)
        runs.finish_run(conn, run_id, "ok", {**summary, "wall_started": started.isoformat(),
                                             "seconds": round(seconds, 3)})


if __name__ == "__main__":
    cli.entrypoint(main)
