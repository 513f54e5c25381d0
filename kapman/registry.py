"""Every KapMan command, declared once and in runbook order: the one list the console, the nightly,
status, the runbook, the demo, the docs tests and every hint read.

A ``Step``'s ``name`` is one string for all of its identities: the ``kapman`` subcommand, the
``ingest_runs.job`` of its ledger rows and the ``step`` of its result.  The registry holds only
strings (module paths), so reading it imports nothing heavy: ``kapman --help`` and the options
worker processes never load pandas or numpy.  The step's definition (its parameters type, details
type and body, see ``kapman.execute.Definition``) is imported from ``module`` on first use.

Adding a step: its own module (its ``Params`` with ``validate()``, its details dataclass, its
body and ``STEP = Definition(...)``), its command line ``kapman/commands/<name>.py`` (the parser
that builds the params and runs the step), one line in ``STEPS`` below, and, for the runbook's
``python -m scripts.<entry>`` spelling, a four-line shim ``scripts/<entry>.py``.  The console,
the nightly (when the step declares ``planned``), status's mending commands, hints, the runbook
and the docs tests pick it up from here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from kapman.ops.inventory import StepDays


_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
#: The source checkout KapMan runs from (``pyproject.toml`` beside the package: a clone, or an
#: editable install of one), or None when it is installed.  Only a checkout has the runbook's
#: ``scripts`` package; an installed KapMan's commands are ``kapman <name>``.
CHECKOUT: Path | None = _PACKAGE_PARENT if (_PACKAGE_PARENT / "pyproject.toml").is_file() else None


def in_checkout(checkout: str, installed: str) -> str:
    """``checkout`` where KapMan runs from its source checkout, else ``installed``: a hint naming
    ``./dev.sh``, the compose file or ``.env.example`` helps only where they are."""
    return checkout if CHECKOUT is not None else installed


def start_server_hint() -> str:
    """What to do when no database server answers."""
    return in_checkout("start the database (./dev.sh db up, or docker compose up -d db)",
                       "start the database server (PostgreSQL with TimescaleDB)")


@dataclass(frozen=True)
class Step:
    name: str                  # subcommand, ledger job and result step: one string
    about: str                 # one line for the overview
    script: str                # the runbook's entry point: ``python -m <script>``
    unit: str = ""             # what one unit of work is: "files", "symbols", "dates" ("": not a step)
    module: str | None = None  # where ``STEP`` (a kapman.execute.Definition) is defined
    mend_args: str = ""        # the arguments of the command that mends (or reruns) this step
    #: "module:function": ``(conn, start, end) -> kapman.ops.inventory.StepDays``, what the step has
    #: done and still owes over a range of trading days (the inventory status and the nightly read)
    days_of: str | None = None
    ledger_aliases: tuple[str, ...] = ()  # older job names its ledger rows may carry
    cli: str | None = None     # the module with ``main(argv)``; default ``kapman.commands.<name>``
    recorded: bool = True      # its runs are rows of ``ingest_runs`` (a report writes files only)

    @property
    def main_module(self) -> str:
        """Where the command's ``main(argv)`` is (``kapman <name>`` and the script shim run it)."""
        return self.cli or f"kapman.commands.{self.name.replace('-', '_')}"

    @property
    def command(self) -> str:
        """The command as the runbook writes it, ``python -m <script>``, in a checkout; where KapMan is
        installed (no ``scripts`` package there), ``kapman <name>``."""
        return f"python -m {self.script}" if CHECKOUT is not None else f"kapman {self.name}"

    @property
    def mend(self) -> str:
        """The command that mends this step, for hints, status and the runbook."""
        return f"{self.command} {self.mend_args}".rstrip()

    @property
    def jobs(self) -> tuple[str, ...]:
        """Every ``ingest_runs.job`` this step's rows carry (the current name first)."""
        return (self.name, *self.ledger_aliases)

    def definition(self) -> Any:
        """The step's ``kapman.execute.Definition``: its parameters, details and body (imports its
        module; the registry itself imports nothing of KapMan, so every layer may read it)."""
        if self.module is None:
            raise LookupError(f"{self.name} is a tool, not a step with a body")
        return importlib.import_module(self.module).STEP  # type: ignore[no-any-return]

    def days(self, conn: psycopg.Connection, start: date, end: date) -> StepDays:
        """What this step has done and still owes from ``start`` to ``end``."""
        if self.days_of is None:
            raise LookupError(f"{self.name} does not work by day")
        module, _, function = self.days_of.partition(":")
        ask: Callable[[psycopg.Connection, date, date], StepDays] = getattr(importlib.import_module(module), function)
        return ask(conn, start, end)

    def done(self, conn: psycopg.Connection, day: date) -> bool:
        """Whether this step's work for ``day`` is in the warehouse, and nothing of it is owed."""
        return self.days(conn, day, day).complete(day)


_DAYS = "kapman.ops.inventory"

#: Runbook order; the nightly runs the steps among these it plans, in this order.
STEPS: tuple[Step, ...] = (
    Step("rebuild", "drop, recreate, migrate, validate, fingerprint", "scripts.db.a5_deterministic_rebuild",
         "rebuilds", "kapman.ops.rebuild"),
    Step("tickers", "the ticker universe from the reference API", "scripts.ingest_tickers", "tickers",
         "kapman.ingest.tickers", "--force"),
    Step("splits", "stock splits from the reference API, for A2's adjustment", "scripts.ingest_splits", "pages",
         "kapman.ingest.splits"),
    Step("watchlists", "watchlists from data/watchlists/*.txt", "scripts.ingest_watchlists", "symbols",
         "kapman.ingest.watchlists"),
    Step("ohlcv", "daily bars from the flat files into public.ohlcv", "scripts.ingest_ohlcv", "files",
         "kapman.ingest.ohlcv", "incremental", days_of=f"{_DAYS}:ohlcv_days"),
    Step("restore-options", "archived option snapshots into a rebuilt database", "scripts.restore_options_archive",
         "files", "kapman.archive.restore", ledger_aliases=("restore_options",)),
    Step("options", "option-chain snapshots of the watchlist symbols", "scripts.ingest_options", "symbols",
         "kapman.ingest.options.step", days_of=f"{_DAYS}:options_days"),
    Step("a2", "technical indicators and price metrics", "scripts.run_a2_local_ta", "dates",
         "kapman.jobs.a2_local_ta", days_of=f"{_DAYS}:a2_days"),
    Step("a3", "dealer metrics from the option snapshots", "scripts.run_a3_dealer_metrics", "symbol-dates",
         "kapman.jobs.a3_dealer_metrics", days_of=f"{_DAYS}:a3_days"),
    Step("nightly", "everything due by the clock and the NYSE calendar, in order", "scripts.nightly", "steps",
         "kapman.ops.nightly"),
    Step("status", "OK / WARN / FAIL per area, and the command that mends it", "scripts.status"),
    Step("migrate", "pending migrations applied in place, every row kept", "scripts.db.migrate", "migrations",
         "kapman.ops.migrate"),
    Step("report", "offline HTML pages: a symbol's charts, a watchlist index, warehouse coverage",
         "scripts.report", "symbols", "kapman.report.run", recorded=False),
    Step("show", "a symbol's key values in the terminal", "scripts.show"),
    Step("export", "ohlcv, flattened daily_snapshots and options_chains to Parquet, a file per date",
         "kapman.export", cli="kapman.export"),
    Step("screen", "the symbols whose stored values on a date satisfy an expression", "kapman.screen",
         cli="kapman.screen"),
    Step("runs", "the run ledger, newest first, by step and outcome", "kapman.views.runs", cli="kapman.views.runs"),
    Step("snapshots", "option snapshots: symbols, completeness, archive state", "kapman.views.snapshots",
         cli="kapman.views.snapshots"),
    Step("demo", "the whole runbook on the offline sandbox", "kapman.demo", cli="kapman.demo"),
    Step("sandbox", "the offline market: REST and S3 servers, flat-file mirrors", "kapman.sandbox",
         cli="kapman.sandbox.__main__"),
)

BY_NAME: dict[str, Step] = {s.name: s for s in STEPS}
#: ``ingest_runs.job`` -> its step, old names included.
BY_JOB: dict[str, Step] = {job: s for s in STEPS for job in s.jobs}


def get(name: str) -> Step:
    """The step called ``name`` (its subcommand or any name its ledger rows carry)."""
    try:
        return BY_JOB.get(name) or BY_NAME[name]
    except KeyError:
        raise LookupError(f"no step named {name!r}; the steps are {', '.join(BY_NAME)}") from None


def steps() -> Iterator[Step]:
    """The steps with a body, in runbook order."""
    return (s for s in STEPS if s.module is not None)


def recorded_steps() -> Iterator[Step]:
    """The steps whose runs the ledger records, in runbook order."""
    return (s for s in steps() if s.recorded)


def command(name: str) -> str:
    """The runbook's command for step ``name``: ``python -m scripts...``."""
    return get(name).command


def mend(name: str) -> str:
    """The command that mends step ``name`` (its rerun, with the arguments that make it whole)."""
    return get(name).mend
