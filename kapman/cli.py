"""What every entrypoint shares: common options, logging set-up, error-to-exit-code mapping.

Exit codes follow kapman.step: 0 the asked work is done, 1 some units failed, 2 usage,
configuration or total failure or nothing could be done for what was asked, 130 interrupted
(Ctrl-C), 143 and 129 stopped by SIGTERM and SIGHUP (recorded as interrupted, like Ctrl-C;
see kapman.signals).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

import psycopg

from kapman import clock, signals
from kapman.config import Settings, load_settings, mask_secrets_in
from kapman.db.errors import classify
from kapman.errors import KapManError, UsageError
from kapman.step import StepResult
from kapman.symbols import capped, is_symbol

EXIT_OK = 0
#: An unforeseen error, as any failure that stops a command (kapman.step).
EXIT_FAILURE = 2
#: The reader of the output went away (``| head``), as a shell reports a process ended by SIGPIPE.
EXIT_BROKEN_PIPE = 141


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Examples kept as written; "(default: …)" added only where the help does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class Once(argparse._StoreAction):
    """``action=cli.Once``: an option whose repetition has no one meaning (``--symbols AAPL --symbols
    MSFT``: both, or MSFT?) is refused given twice, its aliases included; the last one silently won
    (MSFT computed alone).  Other options keep the last value given, so a wrapper's defaults can be
    overridden after them."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        given: dict[str, Any] | None = getattr(parser, "_given", None)
        if given is not None:
            if self.dest in given:
                parser.error(f"argument {'/'.join(self.option_strings)}: given twice ({given[self.dest]}, then "
                             f"{values}); give it once")
            given[self.dest] = values
        super().__call__(parser, namespace, values, option_string)


class Parser(argparse.ArgumentParser):
    """Every KapMan parser: no silently accepted abbreviations (``--for`` is not ``--force``), and
    usage errors that never echo a URL-like value (a mistyped ``--dburl URL`` carries a password)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        self._words = list(sys.argv[1:] if args is None else args)   # for error(): was --json asked for?
        self._given: dict[str, Any] = {}   # the values of the options given once (Once)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        message = mask_secrets_in(message)
        # A script reading stdout gets its one object (``--json`` given to the command or before its subcommand).
        if "--json" in getattr(self, "_words", ()) or "--json" in sys.argv[1:]:
            print(json.dumps({"status": "error", "error": f"{self.prog}: {message}", "hint": "see --help",
                              "exit_code": EXIT_FAILURE}, sort_keys=True))
        super().error(message)


#: The program name parsers show; the ``kapman`` command sets it to ``kapman <subcommand>``.
prog_override: str | None = None


def parser(prog: str, description: str, examples: str) -> argparse.ArgumentParser:
    p = Parser(prog=prog_override or prog, description=description,
               epilog="examples:\n" + examples.strip("\n"))
    add_common_options(p)
    return p


def add_common_options(p: argparse.ArgumentParser, *, in_subcommand: bool = False,
                       db_url_help: str = "database URL; overrides DATABASE_URL from the environment or .env") -> None:
    """The options every command takes; a subcommand repeats them so they may follow it."""
    default: Any = argparse.SUPPRESS if in_subcommand else None
    flag: Any = argparse.SUPPRESS if in_subcommand else False
    p.add_argument("--db-url", metavar="URL", type=_db_url, default=default, help=db_url_help)
    p.add_argument("--json", action="store_true", default=flag, help="print the final summary as one JSON object")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("-v", "--verbose", action="store_true", default=flag, help="log progress details")
    noise.add_argument("-q", "--quiet", action="store_true", default=flag, help="print only the summary and errors")
    p.add_argument("--debug", action="store_true", default=flag, help="show tracebacks on errors")


def _db_url(text: str) -> str:
    """--db-url: an empty one (a variable left unset in a script) is refused, not taken for "not given",
    which would run the command on DATABASE_URL's warehouse."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; name a database URL, or leave --db-url out for DATABASE_URL")
    return text


def day_arg(text: str) -> date:
    """An argparse type: a date written YYYY-MM-DD (``clock.parse_day``), refused with the form otherwise."""
    try:
        return clock.parse_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def count_arg(text: str) -> int:
    """An argparse type: a whole number of at least 1 (how many rows to list)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return min(value, 2**63 - 1)   # more than SQL's LIMIT takes means all of them (it was 'bigint out of range')


def instant_arg(text: str) -> str:
    """An argparse type: an instant in one of ``clock.INSTANT_FORMS``, kept as written."""
    try:
        clock.parse_instant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def directory_arg(flag: str, default: object) -> Callable[[str], Path]:
    """An argparse type: a directory; an empty one (a variable left unset in a script) is refused,
    not read as the current directory (whose files a step would then take for its input)."""
    def directory(text: str) -> Path:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"is empty; name a directory, or leave {flag} out for {default}")
        return Path(text)

    return directory


def add_date_options(p: argparse.ArgumentParser, default: str) -> None:
    """--date or --start-date/--end-date (trading dates), and --symbols, as A2 and A3 take them."""
    day = day_arg
    p.add_argument("--date", type=day, action=Once, metavar="YYYY-MM-DD", help=f"one trading date (default: {default})")
    p.add_argument("--start-date", type=day, action=Once, metavar="YYYY-MM-DD", help="first date of a range")
    p.add_argument("--end-date", type=day, action=Once, metavar="YYYY-MM-DD", help="last date of a range")


def symbols_arg(text: str | None) -> list[str] | None:
    """``--symbols AAPL,AAp ,BRK.B`` -> ['AAPL', 'AAp', 'BRK.B'] (sorted, unique, case kept: symbols are
    case-sensitive); None when not given.  A name that cannot be a symbol is a usage error."""
    if text is None:
        return None
    wanted = sorted({s.strip() for s in text.split(",") if s.strip()})
    if not wanted:  # an empty variable in a script: not a licence to take every symbol
        raise UsageError("--symbols is empty", hint="name symbols (AAPL,MSFT), or leave --symbols out for all")
    bad = [s for s in wanted if not is_symbol(s)]
    if bad:
        raise UsageError(f"--symbols: not a ticker symbol: {capped([repr(s) for s in bad])}",
                         hint="symbols are ASCII letters, digits and '.', case as listed, an index with I: "
                              "(e.g. AAPL,BRK.B,AAp,I:SPX)")
    return wanted


class _Scrubber(logging.Filter):
    """Last line of defence: no secret value reaches a log line."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


def configure_logging(args: argparse.Namespace, settings: Settings | None = None) -> None:
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    if settings is not None:
        handler.addFilter(_Scrubber(settings.secrets()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "botocore", "boto3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def settings_for(args: argparse.Namespace) -> Settings:
    settings = load_settings(database_url=args.db_url)
    configure_logging(args, settings)
    return settings


def emit(args: argparse.Namespace, text: str, data: dict[str, Any]) -> None:
    """The one final summary: a human line, or JSON with --json."""
    if getattr(args, "json", False):
        print(json.dumps(data, default=str, sort_keys=True))
    else:
        print(text)


def finish(args: argparse.Namespace, result: StepResult) -> int:
    """Print a step's summary (JSON with --json) and return its exit code."""
    result.stop_clock()
    emit(args, result.summary(), result.as_dict())
    return result.exit_code


def _report_error(as_json: bool, status: str, message: str, hint: str | None, code: int) -> int:
    if as_json:
        print(json.dumps({"status": status, "error": message, "hint": hint, "exit_code": code}, sort_keys=True))
    else:
        print(f"{status}: {message}", file=sys.stderr)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
    return code


def _where(exc: BaseException) -> str:
    """The innermost KapMan function the exception passed through, e.g. ``kapman.clock.close_of``."""
    inner = ""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        module = frame.f_globals.get("__name__", "")
        if module.startswith(("kapman", "scripts")) and module != __name__:
            inner = f"{module}.{frame.f_code.co_name}"
    return inner


def _command_of(main: Callable[..., int]) -> str:
    """How the command was run, for messages: ``python -m scripts.status`` (its module, also when
    it runs as ``__main__``)."""
    module = getattr(main, "__module__", None) or "kapman"
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = spec.name if spec is not None else sys.argv[0]
    return f"python -m {module}" if module.startswith(("scripts", "kapman")) else module


def _unexpected(main: Callable[..., int], exc: Exception, debug: bool) -> tuple[str, str]:
    """(one line naming what was being done and what went wrong, the hint) for an error nobody
    foresaw; the traceback goes to the log files attached (the nightly's), or to stderr with --debug."""
    command = prog_override or _command_of(main)
    where = _where(exc)
    text = mask_secrets_in(str(exc)).replace("\n", " ")[:300]
    line = f"{command}: unexpected {type(exc).__name__}{f' in {where}' if where else ''}: {text}"
    files = [h for h in logging.getLogger().handlers
             if isinstance(h, logging.FileHandler) and h.baseFilename != os.devnull]
    if debug:
        traceback.print_exception(exc)
    for handler in files:
        handler.handle(logging.LogRecord("kapman.cli", logging.ERROR, __file__, 0, "%s", (line,),
                                         (type(exc), exc, exc.__traceback__)))
    if debug:
        return line, "this is a bug in KapMan or an input it does not foresee; please report it with the traceback"
    shown = f"the traceback is in {files[0].baseFilename}" if files else "rerun with --debug for the traceback"
    return line, f"{shown}; this is a bug in KapMan or an input it does not foresee"


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run an entrypoint's ``main``: a KapManError, or a database error classified by SQLSTATE,
    becomes one line (JSON with --json), a hint and an exit code; any other exception one line
    naming the command and where it happened, exit 2.  A traceback only with --debug (or in the
    log file, when one is attached).  A reader of the output that went away ends it quietly, 141."""
    try:
        return _run_main(main, argv)
    except BrokenPipeError:      # also from the error line itself, under --json
        return _reader_gone()


def _run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    words = list(argv if argv is not None else sys.argv[1:])
    debug, as_json = "--debug" in words, "--json" in words
    try:
        with signals.as_interrupts():
            code = main(argv)
            sys.stdout.flush()   # a reader that went away shows here, not as a warning at exit
            return code
    except KapManError as exc:
        if debug:
            traceback.print_exc()
        return _report_error(as_json, "error", exc.message, exc.hint, exc.exit_code)
    except psycopg.Error as exc:
        if debug:
            traceback.print_exc()
        err = classify(exc)
        return _report_error(as_json, "error", err.message, err.hint, err.exit_code)
    except KeyboardInterrupt as exc:
        return _report_error(as_json, "interrupted", f"by {signals.cause(exc)}; work already committed is kept; "
                             "rerun to resume", None, signals.exit_code(exc))
    except BrokenPipeError:
        # ``kapman screen ... --csv | head``: what the reader took stands; not an error of KapMan's (run_main)
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a bare traceback
        line, hint = _unexpected(main, exc, debug)
        return _report_error(as_json, "error", line, hint, EXIT_FAILURE)


def _reader_gone() -> int:
    """Stop quietly, as a tool killed by SIGPIPE: the reader asked for no more (``status | head``).
    Standard output goes to /dev/null first, so no later write or the exit's flush fails again."""
    try:
        stdout = sys.stdout.fileno()
    except (OSError, ValueError):    # not a file (a test's capture): nothing will flush into a pipe
        return EXIT_BROKEN_PIPE
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stdout)
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def entrypoint(main: Callable[[Sequence[str] | None], int]) -> None:
    """``if __name__ == '__main__': entrypoint(main)``."""
    sys.exit(run_main(main))
