"""Step 4: reconcile data/watchlists/*.txt into public.watchlists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from kapman import cli
from kapman.db.connect import connect
from kapman.ingest.watchlists import ingest_watchlists

EXAMPLES = """
  python -m scripts.ingest_watchlists
  python -m scripts.ingest_watchlists --effective-date 2025-12-19 --dir data/watchlists
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m scripts.ingest_watchlists",
                   "Reconcile watchlist files (<watchlist_id>.txt, one symbol per line, # comments) into "
                   "public.watchlists: add new symbols, deactivate removed ones (never delete), reactivate "
                   "returning ones; a deleted file deactivates its list.", EXAMPLES)
    p.add_argument("--effective-date", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                   help="effective date recorded on added/reactivated entries (default: today, New York)")
    p.add_argument("--dir", type=Path, default=None,
                   help="watchlist directory (default: KAPMAN_WATCHLISTS_DIR or data/watchlists)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    with connect(settings.require_database_url()) as conn:
        result = ingest_watchlists(conn, args.dir or settings.watchlists_dir, effective_date=args.effective_date)
    cli.emit(args, result.summary(), result.as_dict())
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.entrypoint(main)
