"""Step 4: reconcile data/watchlists/*.txt into public.watchlists."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli, registry
from kapman.ingest import watchlists

COMMAND = registry.command("watchlists")
EXAMPLES = f"""
  {COMMAND}
  {COMMAND} --effective-date 2025-12-19 --dir data/watchlists
  {COMMAND} --allow-deactivations     # mvp.txt really was emptied: deactivate its list
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(COMMAND,
                   "Reconcile watchlist files (<watchlist_id>.txt, one symbol per line, # comments) into "
                   "public.watchlists: add new symbols, deactivate removed ones (never delete), reactivate "
                   "returning ones; a deleted file deactivates its list (how a list is retired), while a file "
                   "that would deactivate every member of its list (an empty or comments-only file) or more than "
                   "5% of them (at least 25) leaves that list as stored and exits 1 naming it, unless "
                   "--allow-deactivations. Symbols are case-sensitive (AAp is "
                   "not AAP) and kept as written. Any bad file (a name that links to nothing, a FIFO or a device "
                   "included: it is not a deleted file), or a directory without watchlists, stops the "
                   "run before anything is written. Exits 1 when some active symbols have no ticker, 2 when "
                   "none has one or tickers are not loaded yet.", EXAMPLES)
    p.add_argument("--effective-date", type=cli.day_arg, action=cli.Once, default=None, metavar="YYYY-MM-DD",
                   help="effective date recorded on added/reactivated entries (default: today, New York)")
    p.add_argument("--allow-deactivations", action="store_true",
                   help="apply a file that would deactivate every member of its list, or more than 5%% of them "
                        "(at least 25): without it that list is left as stored and the run exits 1, since a file "
                        "emptied or cut short (a copy interrupted, a disk full) reads so")
    p.add_argument("--dir", type=cli.directory_arg("--dir", "KAPMAN_WATCHLISTS_DIR or data/watchlists"),
                   default=None,
                   help="watchlist directory (default: KAPMAN_WATCHLISTS_DIR or data/watchlists)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    params = watchlists.WatchlistsParams(args.dir or settings.watchlists_dir, args.effective_date,
                                         args.allow_deactivations)
    return cli.finish(args, watchlists.run(settings, params))
