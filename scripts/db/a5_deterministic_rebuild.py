"""A5: drop and recreate the KapMan database, apply db/migrations, validate, fingerprint."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli
from kapman.config import mask_url
from kapman.db.rebuild import rebuild

EXAMPLES = """
  python -m scripts.db.a5_deterministic_rebuild
  python -m scripts.db.a5_deterministic_rebuild --iterations 3
  python -m scripts.db.a5_deterministic_rebuild --print-migrations --db-url postgresql://kapman:***@127.0.0.1:5432/kapman
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m scripts.db.a5_deterministic_rebuild",
                   "Destroy and rebuild the database from db/migrations (the A6 schema), validate "
                   "every runbook invariant and print the schema fingerprint. All data is lost.",
                   EXAMPLES)
    p.add_argument("--iterations", type=int, default=1, metavar="N",
                   help="rebuild N times and require an identical fingerprint each time")
    p.add_argument("--print-migrations", action="store_true", help="list the migrations applied")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    url = settings.require_database_url()
    result = rebuild(url, iterations=args.iterations)
    if not args.quiet and not args.json:
        print(f"server: {result.server.describe()}")
        print(f"database: {mask_url(url)}")
        if args.print_migrations:
            for m in result.migrations:
                print(f"  {m.filename}  sha256:{m.checksum[:12]}")
        for n, it in enumerate(result.iterations, 1):
            print(f"rebuild {n}: fingerprint {it.fingerprint}  ({it.seconds:.2f}s)")
        for check in result.iterations[-1].report.checks:
            print(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    mode = result.iterations[-1].report.lifecycle_mode
    cli.emit(args,
             f"rebuilt {result.database}: {len(result.migrations)} migrations, "
             f"{len(result.iterations[-1].report.checks)} checks passed, lifecycle={mode}, "
             f"fingerprint {result.fingerprint[:16]} identical across {len(result.iterations)} rebuild(s)",
             {"database": result.database, "migrations": [m.filename for m in result.migrations],
              "fingerprint": result.fingerprint, "iterations": len(result.iterations),
              "lifecycle_mode": mode, "server": result.server.describe(),
              "checks": {c.name: c.ok for c in result.iterations[-1].report.checks}})
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.entrypoint(main)
