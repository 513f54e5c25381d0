"""Step 3b: load stock splits from Polygon's reference API (for A2's split adjustment)."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli, registry
from kapman.ingest import splits
from kapman.progress import for_terminal

COMMAND = registry.command("splits")
EXAMPLES = f"""
  {COMMAND}
  {COMMAND} --since 2020-01-01
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(COMMAND,
                   "Load the stock splits executed since --since from /v3/reference/splits into "
                   "public.splits (one per ticker and execution date). A2 computes each date on bars "
                   "adjusted for the splits executed by then; ohlcv keeps the bars as delivered. "
                   "Splits the API no longer lists in that range are removed (not in a run that "
                   "refused a malformed record: it may be a stored split's, nor when it listed no split "
                   "at all); splits of symbols not "
                   "in public.tickers are kept and reported.", EXAMPLES)
    p.add_argument("--since", type=cli.day_arg, action=cli.Once, metavar="YYYY-MM-DD",
                   help="first execution date to load (default: the start of the 730-day retention "
                        "window, by KapMan's clock; not after today)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    result = splits.run(settings, splits.SplitsParams(since=args.since), for_terminal(args.quiet))
    return cli.finish(args, result)
