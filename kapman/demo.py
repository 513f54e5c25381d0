"""The main job: the whole runbook, end to end, on the offline sandbox (or Polygon).

    python -m kapman.demo [--tickers 600] [--seed 42] [--option-days 5] [--live] [--db-url URL]

It starts the offline market (Polygon REST and S3 on 127.0.0.1) and points every step at it, with
KapMan's clock at the market's last close.  When the options archive (KAPMAN_ARCHIVE_DIR) holds
snapshots, they are restored after the OHLCV base, as the runbook's Step 5a does.  Options are
hydrated for the last --option-days trading days by stepping the sandbox clock and KapMan's
clock day by day, so each run is a genuine snapshot as of that day and the A3 week of the runbook
has data.  With --live the same steps run against Polygon with the credentials in .env (the REST
key and the flat-file keys, all checked before anything is dropped), options for today only.
It ends by writing the report page of a watchlist symbol (AAPL) and the warehouse coverage page
under reports/, and prints their paths.

The demo works in a database of its own: kapman_demo on the server of DATABASE_URL, REBUILT on
every run.  Your database is never touched unless you name it with --db-url; one that holds data
is then described and destroyed only when you type its name on a terminal, or pass --yes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path

import psycopg

from kapman import cli, registry, runbook
from kapman.calendar import trading_days
from kapman.cli import Parser
from kapman.clock import close_of
from kapman.config import PROJECT_ROOT, Settings, bounded, load_settings, mask_url
from kapman.db import destruction
from kapman.db.connect import connect, database_name, with_database
from kapman.db.rebuild import MAINTENANCE_DB, database_exists
from kapman.errors import ConfigError, KapManError

#: The demo's own database, on the server DATABASE_URL names.
DEMO_DATABASE = "kapman_demo"

REPORT = {
    "tickers": "SELECT count(*) FILTER (WHERE active) || ' active of ' || count(*) FROM tickers",
    "splits": "SELECT count(*) || ' splits, ' || count(*) FILTER (WHERE split_from > split_to) || ' reverse' "
              "FROM splits",
    "watchlist symbols": "SELECT count(DISTINCT symbol) || ' active' FROM watchlists WHERE active",
    "ohlcv": "SELECT count(*) || ' bars, ' || coalesce(min(date)::text, '-') || ' .. ' || "
             "coalesce(max(date)::text, '-') FROM ohlcv",
    "options_chains": "SELECT count(*) || ' contracts in ' || count(DISTINCT time) || ' snapshots of ' || "
                      "count(DISTINCT ticker_id) || ' symbols' FROM options_chains",
    "A2 rows": "SELECT count(*) FILTER (WHERE technical_indicators_json IS NOT NULL) || ' rows over ' || "
               "count(DISTINCT time) FILTER (WHERE technical_indicators_json IS NOT NULL) || ' dates' "
               "FROM daily_snapshots",
    "A3 rows": "SELECT count(*) FILTER (WHERE dealer_metrics_json IS NOT NULL) || ' rows: ' || coalesce(("
               "SELECT string_agg(s || ' ' || n, ', ' ORDER BY s) FROM (SELECT dealer_metrics_json->>'status' s, "
               "count(*) n FROM daily_snapshots WHERE dealer_metrics_json IS NOT NULL GROUP BY 1) x), '-') "
               "FROM daily_snapshots",
    "index A3 (newest)": "SELECT coalesce(string_agg(t.symbol || ' ' || (ds.dealer_metrics_json->>'status'), ', ' "
                         "ORDER BY t.symbol), '-') FROM daily_snapshots ds JOIN tickers t ON t.id = ds.ticker_id "
                         "WHERE t.symbol LIKE 'I:%' AND ds.dealer_metrics_json IS NOT NULL AND ds.time = "
                         "(SELECT max(time) FROM daily_snapshots WHERE dealer_metrics_json IS NOT NULL)",
}


def recent_days(end: date, n: int) -> list[date]:
    days = list(trading_days(date(end.year - 1, end.month, 1), end))
    return days[-n:]


def option_steps(days: list[date], set_clock: Callable[[datetime], None] | None) -> list[runbook.Step]:
    """One options run per day, each with both clocks at that day's close."""
    def mover(day: date) -> Callable[[], None] | None:
        return (lambda: set_clock(close_of(day))) if set_clock else None

    return [runbook.Step("6", f"options snapshot as of {d}", registry.command("options"),
                         env={"KAPMAN_NOW": close_of(d).isoformat()}, before=mover(d))
            for d in days]


def archive_steps(url: str) -> list[runbook.Step]:
    """Step 5a when the options archive of the warehouse at ``url`` (KAPMAN_ARCHIVE_DIR, else its
    own directory) holds snapshots, else nothing."""
    from kapman.archive.inventory import archived_dirs
    from kapman.archive.store import ArchiveError, open_store

    try:
        archived = archived_dirs(open_store(load_settings(database_url=url)))
    except ArchiveError as exc:
        print(f"options archive not readable ({exc.message}); not restoring from it", flush=True)
        return []
    return [runbook.restore_step()] if archived else []


def report(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return [(name, str(conn.execute(query).fetchone()[0])) for name, query in REPORT.items()]  # type: ignore[index]


def sandbox_runbook(url: str, *, tickers: int = 600, seed: int = 42, option_days: int = 5,
                    dashboards: bool = True, quiet: bool = False,
                    profile: str = "realistic") -> list[runbook.StepRun]:
    """Every runbook step against a fresh offline sandbox (on the real API's shapes unless
    ``profile`` says otherwise); stops at the first exit code 2."""
    from kapman.sandbox.environment import environment
    from kapman.sandbox.market import Market
    from kapman.sandbox.profiles import profile_named
    from kapman.sandbox.rest import SandboxRestServer
    from kapman.sandbox.s3 import SandboxS3

    market = Market(seed=seed, n_tickers=tickers, profile=profile_named(profile))
    if not quiet:
        print(f"starting the offline sandbox: {market!r} (REST and S3 on 127.0.0.1)", flush=True)
    with SandboxRestServer(market) as rest, SandboxS3(market) as s3:
        env = environment(market, rest, s3)
        env["FLATFILES_MIRROR_DIR"] = ""    # read the S3 server, not a mirror named in .env
        if not quiet:
            print(f"database {mask_url(url)} will be rebuilt; KapMan's clock: {env['KAPMAN_NOW']}", flush=True)
        steps = (runbook.schema_and_reference_steps() + archive_steps(url)
                 + option_steps(recent_days(market.end_date, option_days), rest.set_clock)
                 + runbook.analytics_steps() + (runbook.dashboard_steps(fresh(DASHBOARDS_OUT)) if dashboards else [])
                 + runbook.report_steps())
        return _run_all(steps, env, url, quiet)


def require_live_credentials(settings: Settings) -> None:
    """Every credential the live runbook needs, checked before anything is dropped: the REST key
    (tickers, options) and the flat-file keys (OHLCV), unless a local mirror replaces S3."""
    missing = [] if settings.polygon_api_key else ["POLYGON_API_KEY"]
    if settings.flatfiles_mirror_dir is None:
        missing += [name for name, value in (("FLATFILES_ACCESS_KEY_ID", settings.flatfiles_access_key_id),
                                             ("FLATFILES_SECRET_ACCESS_KEY", settings.flatfiles_secret_access_key))
                    if not value]
    if missing:
        raise ConfigError(f"demo --live needs {', '.join(missing)} (looked in the environment and .env); "
                          "nothing was changed",
                          hint="put the REST key and the S3 flat-file keys from the Massive dashboard in .env, "
                               "or run the demo without --live on the offline sandbox")


def demo_url(settings: Settings, explicit: str | None) -> str:
    """``--db-url`` when given, else kapman_demo on the server of DATABASE_URL."""
    if explicit:
        return explicit
    base = settings.require_database_url()
    database_name(base)      # a URL the server can be told apart in
    return with_database(base, DEMO_DATABASE)


def confirm_target(url: str, *, yes: bool) -> None:
    """The demo's own database is rebuilt unasked; any other one only as the rebuild would."""
    name = database_name(url)
    if name == DEMO_DATABASE:
        return
    with connect(with_database(url, MAINTENANCE_DB)) as admin:
        exists = database_exists(admin, name)
    from kapman.archive import archived_snapshot_count

    destruction.confirm(destruction.measure(url, name, exists, archived_snapshot_count), yes=yes, what="the demo")


def live_runbook(url: str, *, dashboards: bool = True, quiet: bool = False) -> list[runbook.StepRun]:
    """The same steps against Polygon with the credentials in .env (options: today only)."""
    settings = load_settings()
    require_live_credentials(settings)
    if not quiet:
        print(f"live run against {settings.polygon_base_url}, database {mask_url(url)}", flush=True)
    steps = (runbook.schema_and_reference_steps() + archive_steps(url)
             + [runbook.Step("6", "options snapshot (now)", registry.command("options"))]
             + [runbook.Step("7", "A2 for the newest date", registry.command("a2")),
                runbook.Step("8", "A3 for the newest snapshot", registry.command("a3"))]
             + (runbook.dashboard_steps(fresh(DASHBOARDS_OUT)) if dashboards else []) + runbook.report_steps())
    return _run_all(steps, {}, url, quiet)


#: The dashboards' output (about 1,100 lines), kept out of the terminal so the demo ends with its summary.
DASHBOARDS_OUT = PROJECT_ROOT / "logs" / "demo-dashboards.txt"


def fresh(path: Path) -> Path:
    """``path`` emptied, for this run's output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")
    return path


def _run_all(steps: list[runbook.Step], env: dict[str, str], url: str, quiet: bool) -> list[runbook.StepRun]:
    results = []
    for step in steps:
        result = runbook.run_step(step, {**env, "DATABASE_URL": url}, url, quiet=quiet)
        results.append(result)
        if result.returncode == 2:
            print(f"\nstep {step.number} ({step.title}) failed with exit 2; stopping", file=sys.stderr)
            break
        if result.returncode and quiet:   # its own output went nowhere: say which step, and how to rerun it
            print(f"step {step.number} ({step.title}) exited {result.returncode}: {step.command}", file=sys.stderr)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = Parser(prog=cli.prog_override or "python -m kapman.demo",
               description=(__doc__ or "").replace("python -m kapman.demo", registry.command("demo")),
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickers", type=bounded(50, 20000, integer=True), default=600,
                   help="sandbox universe size, 50 to 20000 (default: 600)")
    p.add_argument("--seed", type=bounded(0, 2**32 - 1, integer=True), default=42,
                   help="sandbox market seed (default: 42)")
    p.add_argument("--option-days", type=bounded(1, 60, integer=True), default=5,
                   help="trading days of option snapshots to hydrate, 1 to 60 (default: 5)")
    p.add_argument("--profile", default="realistic",
                   help=f"sandbox profile (default: realistic; {registry.command('sandbox')} serve --help)")
    p.add_argument("--live", action="store_true", help="use Polygon (credentials from .env) instead of the sandbox")
    p.add_argument("--no-dashboards", action="store_true", help="skip the psql dashboards")
    cli.add_common_options(p, db_url_help=f"the database to rebuild (default: {DEMO_DATABASE} on the server of "
                                          "DATABASE_URL)")
    p.add_argument("-y", "--yes", action="store_true",
                   help="with --db-url: destroy a database that holds data without asking")
    args = p.parse_args(argv)
    cli.configure_logging(args)
    quiet = args.quiet or args.json   # the steps' output would bury the summary (and break the JSON)
    try:
        settings = load_settings()
        if args.live:
            require_live_credentials(settings)
        else:   # the sandbox's S3 needs moto (the 'sandbox' extra): said before any database is asked about
            importlib.import_module("kapman.sandbox.s3")
        url = demo_url(settings, args.db_url)
        confirm_target(url, yes=args.yes)
        if not quiet:
            print(f"demo database: {mask_url(url)}", flush=True)
        started = time.perf_counter()
        if args.live:
            results = live_runbook(url, dashboards=not args.no_dashboards, quiet=quiet)
        else:
            results = sandbox_runbook(url, tickers=args.tickers, seed=args.seed, option_days=args.option_days,
                                      dashboards=not args.no_dashboards, profile=args.profile, quiet=quiet)
    except KapManError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 2
    if results and results[-1].returncode == 2:
        return 2
    partial = [r for r in results if r.returncode]
    summary = (f"{len(results)} steps in {time.perf_counter() - started:.0f}s"
               + (f"; {len(partial)} with partial failures" if partial else "; all succeeded"))
    values, pages = report(url), [str(PROJECT_ROOT / page) for page in runbook.REPORT_PAGES]
    if not args.no_dashboards:
        pages.append(str(DASHBOARDS_OUT))
    if args.json:
        print(json.dumps({"database": mask_url(url), "steps": len(results), "partial": len(partial),
                          "report": dict(values), "pages": pages, "summary": summary}, default=str, sort_keys=True))
        return 1 if partial else 0
    if not args.quiet:
        print(f"\n== Report: {mask_url(url)} ==")
        for name, value in values:
            print(f"  {name:<18} {value}")
    print("\n== Pages (and the dashboards' output) ==")
    for page in pages:
        print(f"  {page}")
    print(summary)
    return 1 if partial else 0


if __name__ == "__main__":
    cli.entrypoint(main)
