"""Step 3: load the ticker universe from Polygon's reference API."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kapman import cli, registry
from kapman.ingest import tickers
from kapman.progress import for_terminal
from kapman.ticker_types import DEFAULT_TYPES, parse_types

COMMAND = registry.command("tickers")
EXAMPLES = f"""
  {COMMAND} --force
  {COMMAND} --force --types CS,ETF
  KAPMAN_TICKER_TYPES=CS,ETF,ETV {COMMAND} --force
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(COMMAND,
                   "Load the ticker universe (market=stocks) into public.tickers: the listed tickers and "
                   "those delisted within the 730-day retention window (inactive, with their delisting "
                   "time), latest record per symbol, symbols exactly as listed (case-sensitive), bulk "
                   "upsert, tickers no longer listed marked inactive (never deleted); and every listed index "
                   "(market=indices: I:SPX, I:NDX ...), which gets options and A3 but no bars. "
                   "Without --force it does nothing when tickers are already present (exit 2 if --types "
                   "or --allow-deactivations was given: they change nothing then).", EXAMPLES)
    p.add_argument("--force", action="store_true", help="refresh even when tickers are present")
    p.add_argument("--allow-deactivations", action="store_true",
                   help="mark inactive every ticker the listing no longer holds, however many: without it a "
                        "refresh that would deactivate more than 5%% of the active tickers (at least 25), or any "
                        "while the listing holds a record whose ticker cannot be read, leaves them active and "
                        "exits 1, since a listing cut short reads as mass delistings")
    p.add_argument("--types", default=argparse.SUPPRESS, metavar="CODES",
                   help="security types to keep, Polygon type codes comma-separated "
                        f"(default: KAPMAN_TICKER_TYPES, else {','.join(DEFAULT_TYPES)})")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    given = getattr(args, "types", None)
    types = parse_types(given, source="--types") if given is not None else settings.ticker_types
    refresh_flags = tuple(flag for flag, given in (("--types", given is not None),
                                                   ("--allow-deactivations", args.allow_deactivations)) if given)
    result = tickers.run(settings, tickers.TickersParams(force=args.force, types=types,
                                                          allow_deactivations=args.allow_deactivations,
                                                          refresh_flags=refresh_flags),
                         for_terminal(args.quiet))
    return cli.finish(args, result)
