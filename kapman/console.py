"""``kapman``: one command with a subcommand per entry of the registry, in runbook order.

``kapman ohlcv base --days 30`` runs exactly what the runbook's spelling of that step runs: the
subcommand hands the rest of the line to the step's ``main`` (``kapman.commands.<step>``, which
the ``scripts/`` shims run too), so options, help, summaries and exit codes are the same, with
``kapman ohlcv`` as the program name.  Only the named command's module is imported.
"""

from __future__ import annotations

import difflib
import importlib
import json
import sys
from collections.abc import Sequence

from kapman import __version__, cli, registry


def overview() -> str:
    width = max(len(step.name) for step in registry.STEPS)
    lines = ["usage: kapman <command> [options]   (kapman <command> --help for its options)", "",
             "KapMan's runbook steps and tools; each is also python -m <module>.", "", "commands:"]
    lines += [f"  {step.name:<{width}}  {step.about}" for step in registry.STEPS]
    lines += ["", "  --version  the installed KapMan's version"]
    lines += ["", "examples:", "  kapman rebuild", "  kapman ohlcv base --days 30",
              "  kapman a2 --date 2025-12-19 --symbols AAPL,NVDA"]
    return "\n".join(lines)


def _unknown(name: str, words: list[str]) -> int:
    """A command not in the registry: the nearest names (``scren``: screen), the overview, and under ``--json``
    the one error object a script reads."""
    near = difflib.get_close_matches(name, registry.BY_NAME, n=2, cutoff=0.6)
    message = f"kapman: unknown command {name!r}" + (f"; did you mean {' or '.join(near)}?" if near else "")
    if name.startswith("-"):   # kapman --json screen ...: a command's options follow its name
        message = f"kapman: {name} goes after the command (kapman <command> {name} ...)"
    if "--json" in words:
        print(json.dumps({"status": "error", "error": message, "hint": "kapman --help lists the commands",
                          "exit_code": cli.EXIT_FAILURE}, sort_keys=True))
    print(f"{message}\n\n{overview()}", file=sys.stderr)
    return cli.EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] in ("-h", "--help", "help"):
        print(overview())
        return 0
    if words[0] in ("-V", "--version"):
        print(f"kapman {__version__}")
        return 0
    name, rest = words[0], words[1:]
    step = registry.BY_NAME.get(name)
    if step is None:
        return _unknown(name, words)

    def run(args: Sequence[str] | None) -> int:
        # imported here so that a missing optional dependency is one line, not a traceback
        return int(importlib.import_module(step.main_module).main(args))

    cli.prog_override = f"kapman {name}"
    try:
        return cli.run_main(run, rest)
    finally:
        cli.prog_override = None


def entry() -> None:
    sys.exit(main())
