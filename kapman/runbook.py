"""The runbook's steps as data: the commands of docs/runbooks/README.md (each the registry's
command of its step, with the runbook's example arguments), and a runner for them.

The demo and the end-to-end test run exactly these commands; a unit test checks that each one
appears verbatim in the runbook document, so the doc, the demo and the tests cannot drift apart.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from kapman import registry
from kapman.config import PROJECT_ROOT, shipped

DASHBOARDS = ("tickers_watchlists_dashboard.sql", "ohlcv_dashboard.sql", "options_chains_dashboard.sql",
              "daily_snapshots_dashboard.sql", "dealer_metrics_dashboard.sql")
#: The runbook's example dates: A2 for one date, then the A3 week (Mon 15 - Fri 19 December 2025).
A2_EXAMPLE_DATE = date(2025, 12, 5)
A3_WEEK = (date(2025, 12, 15), date(2025, 12, 19))


@dataclass(frozen=True)
class Step:
    number: str
    title: str
    command: str                       # exactly as written in the runbook
    env: Mapping[str, str] = field(default_factory=dict)
    before: Callable[[], None] | None = None   # e.g. step the sandbox clock
    #: where its output goes (appended) instead of the terminal, e.g. the dashboards' hundreds of lines
    output: Path | None = None

    def argv(self, db_url: str | None = None) -> list[str]:
        """The command's words; psql gets the URL without its password (``secret_env`` has it),
        since a command line is visible to every local user."""
        args = shlex.split(self.command)
        if args[0] == "python":
            args[0] = sys.executable
        elif args[0] == "kapman":   # an installed KapMan's: this one, not whichever PATH finds (or none)
            args[:1] = [sys.executable, "-m", "kapman"]
        if db_url:
            shown = without_password(db_url)[0] if args[0] == "psql" else db_url
            args = [shown if a == "$DATABASE_URL" else a for a in args]
        if args[0] == "psql":
            args[1:1] = ["-X", "-q"]
        return args

    def secret_env(self, db_url: str | None) -> dict[str, str]:
        """What the command needs beside ``argv``: psql's password as PGPASSWORD."""
        password = without_password(db_url)[1] if db_url and self.command.startswith("psql") else None
        return {"PGPASSWORD": password} if password is not None else {}


def without_password(url: str) -> tuple[str, str | None]:
    """(``url`` without the password in its user information, that password or None)."""
    parts = urlsplit(url)
    if parts.password is None or "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}")), unquote(parts.password)


def schema_and_reference_steps() -> list[Step]:
    return [
        # --yes: the demo and the tests run it without a terminal, on a database of their own.
        Step("2", "A6/A5 schema baseline", f"{registry.command('rebuild')} --yes"),
        Step("3", "ticker universe", registry.mend("tickers")),
        Step("3b", "stock splits", registry.command("splits")),
        Step("4", "watchlists", registry.command("watchlists")),
        Step("5", "OHLCV base from the flat files", f"{registry.command('ohlcv')} base"),
    ]


def restore_step() -> Step:
    """After a repave, before new snapshots: what the options archive holds (the demo runs it when
    the archive is not empty)."""
    return Step("5a", "restore the archived option snapshots", registry.command("restore-options"))


def analytics_steps() -> list[Step]:
    d = A2_EXAMPLE_DATE.isoformat()
    start, end = (x.isoformat() for x in A3_WEEK)
    a2, a3 = registry.command("a2"), registry.command("a3")
    return [
        Step("7", "A2 history: every date of the retention window", f"{a2} --history"),
        Step("7", "A2 for the example date", f"{a2} --date {d} --ticker-chunk-size 500"),
        Step("7", "A2 for the A3 week",
             f"{a2} --start-date {start} --end-date {end} --ticker-chunk-size 500"),
        Step("8", "A3 dealer metrics", f"{a3} --start-date {start} --end-date {end}"),
    ]


#: The demo's last step writes these pages (paths relative to the project root).
REPORT_PAGES = (Path("reports/AAPL.html"), Path("reports/warehouse.html"))


def report_steps() -> list[Step]:
    """A watchlist symbol's report and the warehouse coverage page."""
    symbol_page, warehouse_page = REPORT_PAGES
    report = registry.command("report")
    return [Step("10", "report of a watchlist symbol", f"{report} AAPL --out {symbol_page}"),
            Step("10", "warehouse coverage", f"{report} --warehouse --out {warehouse_page}")]


def dashboard_file(name: str) -> str:
    """A dashboard's path as psql is given it in ``PROJECT_ROOT``: ``docs/runbooks/<name>`` in a
    checkout, as the runbook writes it; elsewhere the copy KapMan ships, by its full path."""
    path = shipped("dashboards") / name
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def dashboard_steps(output: Path | None = None) -> list[Step]:
    """The psql dashboards; their output appended to ``output`` when given."""
    variables = {"ohlcv_dashboard.sql": "-v DAYS_BACK=30 -v SYMBOL_LIMIT=25 ",
                 "dealer_metrics_dashboard.sql": "-v SNAPSHOT_N=1 "}
    return [Step("9", f"dashboard {name}", f'psql "$DATABASE_URL" -v ON_ERROR_STOP=1 {variables.get(name, "")}'
                 f"-f {shlex.quote(dashboard_file(name))}", output=output)
            for name in DASHBOARDS]


@dataclass
class StepRun:
    """How one runbook command ran (not a step's result: its exit code and time)."""

    step: Step
    returncode: int
    seconds: float


def run_step(step: Step, env: Mapping[str, str], db_url: str, *, quiet: bool = False) -> StepRun:
    if step.before:
        step.before()
    if not quiet:
        extra = " ".join(f"{k}={v}" for k, v in step.env.items())
        print(f"\n== Step {step.number}: {step.title} ==\n$ {extra + ' ' if extra else ''}{step.command}",
              flush=True)
    if step.command.startswith("psql") and not shutil.which("psql"):
        print("psql is not installed; skipping the dashboard", flush=True)
        return StepRun(step, 0, 0.0)
    started = time.perf_counter()
    if step.output is not None:
        step.output.parent.mkdir(parents=True, exist_ok=True)
        with step.output.open("a", encoding="utf-8") as sink:
            sink.write(f"\n== Step {step.number}: {step.title} ==\n$ {step.command}\n")
            sink.flush()
            code = subprocess.call(step.argv(db_url), cwd=PROJECT_ROOT,
                                   env={**os.environ, **env, **step.env, **step.secret_env(db_url)},
                                   stdout=sink, stderr=subprocess.STDOUT)
        if not quiet:
            print(f"(output appended to {step.output})", flush=True)
        return StepRun(step, code, time.perf_counter() - started)
    out = subprocess.DEVNULL if quiet else None
    code = subprocess.call(step.argv(db_url), cwd=PROJECT_ROOT,
                           env={**os.environ, **env, **step.env, **step.secret_env(db_url)}, stdout=out, stderr=out)
    return StepRun(step, code, time.perf_counter() - started)
