"""Step 8: dealer positioning metrics from options snapshots into daily_snapshots (A3)."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli, registry
from kapman.jobs import a3_dealer_metrics as a3
from kapman.metrics.dealer import DealerParams
from kapman.progress import for_terminal

COMMAND = registry.command("a3")
EXAMPLES = f"""
  {COMMAND} --start-date 2025-12-15 --end-date 2025-12-19 --workers 2
  {COMMAND} --date 2025-12-19 --symbols AAPL,SPY --force
  {COMMAND} --max-dte 60 --min-open-interest 10
"""


def main(argv: Sequence[str] | None = None) -> int:
    defaults = DealerParams()
    p = cli.parser(COMMAND,
                   "Compute dealer metrics (GEX, gamma flip, walls, max pain, ...) per trading date and symbol "
                   "on an active watchlist by that date, from the latest options snapshot taken that day, into "
                   "daily_snapshots.dealer_metrics_json. Conventions: docs/a3_dealer_metrics.md.", EXAMPLES)
    cli.add_date_options(p, "the newest date with an options snapshot")
    p.add_argument("--symbols", action=cli.Once, help="comma-separated subset of the active watchlist symbols")
    p.add_argument("--workers", type=int, default=2,
                   help="threads computing symbols in parallel")
    p.add_argument("--force", action="store_true",
                   help="recompute current dealer metrics too (without it, a symbol is computed when it has "
                        "none, or when its chain of the day was fetched, or rewritten under the same time, "
                        "after they were computed)")
    p.add_argument("--max-dte", type=int, default=defaults.max_dte,
                   help="ignore contracts expiring later")
    p.add_argument("--min-open-interest", type=float, default=defaults.min_open_interest,
                   help="ignore contracts with less open interest")
    p.add_argument("--risk-free-rate", type=float, default=defaults.risk_free_rate,
                   help="annual rate for Black-Scholes re-pricing (0.04 = 4%%)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    dealer = DealerParams(max_dte=args.max_dte, min_open_interest=args.min_open_interest,
                          risk_free_rate=args.risk_free_rate)
    params = a3.A3Params(day=args.date, start=args.start_date, end=args.end_date,
                         symbols=cli.symbols_arg(args.symbols), workers=args.workers, force=args.force,
                         dealer=dealer)
    return cli.finish(args, a3.run(settings, params, for_terminal(args.quiet)))
