"""``kapman``: one command with a subcommand per runbook step, on the same parsers as ``python -m scripts.*``.

``kapman ohlcv base --days 30`` runs exactly what ``python -m scripts.ingest_ohlcv base --days 30``
runs: the subcommand hands the rest of the line to that entry point's ``main``, so options,
help, summaries and exit codes are the same, with ``kapman ohlcv`` as the program name.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence

from kapman import __version__, cli
from kapman.config import CHECKOUT

#: subcommand -> (module with ``main(argv)``, one line for the overview), in runbook order.
COMMANDS: dict[str, tuple[str, str]] = {
    "rebuild": ("scripts.db.a5_deterministic_rebuild", "drop, recreate, migrate, validate, fingerprint"),
    "tickers": ("scripts.ingest_tickers", "the ticker universe from the reference API"),
    "splits": ("scripts.ingest_splits", "stock splits from the reference API, for A2's adjustment"),
    "watchlists": ("scripts.ingest_watchlists", "watchlists from data/watchlists/*.txt"),
    "ohlcv": ("scripts.ingest_ohlcv", "daily bars from the flat files into public.ohlcv"),
    "restore-options": ("scripts.restore_options_archive", "archived option snapshots into a rebuilt database"),
    "options": ("scripts.ingest_options", "option-chain snapshots of the watchlist symbols"),
    "a2": ("scripts.run_a2_local_ta", "technical indicators and price metrics"),
    "a3": ("scripts.run_a3_dealer_metrics", "dealer metrics from the option snapshots"),
    "nightly": ("scripts.nightly", "everything due by the clock and the NYSE calendar, in order"),
    "status": ("scripts.status", "OK / WARN / FAIL per area, and the command that mends it"),
    "report": ("scripts.report", "offline HTML pages: a symbol's charts, a watchlist index, warehouse coverage"),
    "show": ("scripts.show", "a symbol's key values in the terminal"),
    "export": ("kapman.export", "ohlcv, flattened daily_snapshots and options_chains to Parquet, a file per date"),
    "screen": ("kapman.screen", "the symbols whose stored values on a date satisfy an expression"),
    "runs": ("kapman.views.runs", "the run ledger, newest first, by step and outcome"),
    "snapshots": ("kapman.views.snapshots", "option snapshots: symbols, completeness, archive state"),
    "demo": ("kapman.demo", "the whole runbook on the offline sandbox"),
    "sandbox": ("kapman.sandbox.__main__", "the offline market: REST and S3 servers, flat-file mirrors"),
}


def overview() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: kapman <command> [options]   (kapman <command> --help for its options)", "",
             "KapMan's runbook steps and tools; each is also python -m <module>.", "", "commands:"]
    lines += [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    lines += ["", "  --version  the installed KapMan's version"]
    lines += ["", "examples:", "  kapman rebuild", "  kapman ohlcv base --days 30",
              "  kapman a2 --date 2025-12-19 --symbols AAPL,NVDA"]
    return "\n".join(lines)


def module_name(name: str) -> str:
    """The module a command runs: ``scripts.*`` of the checkout, or their copy ``kapman._scripts.*`` when
    installed (the wheel has no top-level ``scripts``, a name other packages use too)."""
    if not (name == "scripts" or name.startswith("scripts.")):
        return name
    if CHECKOUT is None:
        return "kapman._" + name
    if importlib.util.find_spec("scripts") is None:   # an editable install, run outside its checkout
        sys.path.append(str(CHECKOUT))
    return name


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] in ("-h", "--help", "help"):
        print(overview())
        return 0
    if words[0] in ("-V", "--version"):
        print(f"kapman {__version__}")
        return 0
    name, rest = words[0], words[1:]
    if name not in COMMANDS:
        print(f"kapman: unknown command {name!r}\n\n{overview()}", file=sys.stderr)
        return 2

    def run(args: Sequence[str] | None) -> int:
        # imported here so that a missing optional dependency is one line, not a traceback
        return int(importlib.import_module(module_name(COMMANDS[name][0])).main(args))

    cli.prog_override = f"kapman {name}"
    try:
        return cli.run_main(run, rest)
    finally:
        cli.prog_override = None


def entry() -> None:
    sys.exit(main())
