"""Step 3: load the ticker universe from Polygon's reference API."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli
from kapman.db.connect import connect
from kapman.ingest.tickers import DEFAULT_TYPES, ingest_tickers
from kapman.progress import for_terminal
from kapman.providers.polygon import PolygonClient

EXAMPLES = """
  python -m scripts.ingest_tickers --force
  python -m scripts.ingest_tickers --force --types CS,ETF
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m scripts.ingest_tickers",
                   "Load the ticker universe (market=stocks, active) into public.tickers: latest record "
                   "per symbol, bulk upsert, tickers no longer listed marked inactive (never deleted). "
                   "Without --force it does nothing when tickers are already present.", EXAMPLES)
    p.add_argument("--force", action="store_true", help="refresh even when tickers are present")
    p.add_argument("--types", default=",".join(DEFAULT_TYPES),
                   help="security types to keep (Polygon type codes, comma-separated)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    types = tuple(t.strip().upper() for t in args.types.split(",") if t.strip())
    with connect(settings.require_database_url()) as conn:
        client = PolygonClient.from_settings(settings)
        try:
            result = ingest_tickers(conn, client, force=args.force, types=types,
                                    progress=for_terminal(args.quiet))
        finally:
            client.close()
    cli.emit(args, result.summary(), result.as_dict())
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.entrypoint(main)
