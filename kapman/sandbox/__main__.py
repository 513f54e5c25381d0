"""``python -m kapman.sandbox``: run the offline market (REST + S3) or write a flat-file mirror."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kapman import cli, registry
from kapman.config import bounded
from kapman.errors import ConfigError
from kapman.sandbox.environment import environment
from kapman.sandbox.market import DEFAULT_DAYS, DEFAULT_END_DATE, Market
from kapman.sandbox.mirror import write_mirror
from kapman.sandbox.profiles import DEFAULT, ENV_VAR, PROFILES, profile_named
from kapman.sandbox.rest import SandboxRestServer

EXAMPLES = """examples:
  python -m kapman.sandbox serve                                  # 600 tickers, 800 days to 2025-12-19
  python -m kapman.sandbox serve --env-file .env.sandbox          # also write the KEY=value lines
  python -m kapman.sandbox serve --profile realistic              # the real API's shapes (see --help)
  python -m kapman.sandbox serve --tickers 11000 --days 400 --rest-port 8765 --s3-port 8766
  python -m kapman.sandbox write-mirror /tmp/flatfiles --tickers 50 --days 30

control (no auth): curl -XPOST $POLYGON_BASE_URL/_sandbox/clock -d '{"step_trading_days": 1}'
                   curl -XPOST $POLYGON_BASE_URL/_sandbox/faults -d '{"kind": "rate_limit", "times": 3}'
                   curl -XPOST $POLYGON_BASE_URL/_sandbox/flatfiles -d '{"action": "preliminary", "date": "2025-12-19"}'
                   curl -XPOST $POLYGON_BASE_URL/_sandbox/flatfiles -d '{"action": "forbid", "dates": ["2025-12-18"]}'
  hostile upstream (kinds body, reshape, patch; flat-file action tamper):
                   curl -XPOST $POLYGON_BASE_URL/_sandbox/faults -d '{"kind": "patch", "field": "open_interest",
                                                                      "value": 1e300}'
                   curl -XPOST $POLYGON_BASE_URL/_sandbox/faults -d '{"kind": "reshape",
                                                                      "fields": {"next_url": "@other/x"}}'
                   curl -XPOST $POLYGON_BASE_URL/_sandbox/flatfiles -d '{"action": "tamper", "date": "2025-12-19",
                                                                        "rows": {"MSFT": {"close": "inf"}}}'
"""


def _spelt(text: str) -> str:
    """``text`` with the sandbox's command as this KapMan runs it (``kapman sandbox`` where it is installed)."""
    return text.replace("python -m kapman.sandbox", registry.command("sandbox"))


PORT = bounded(0, 65535, integer=True)


def _market_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=bounded(0, 2**32 - 1, integer=True), default=42,
                        help="market seed (default 42)")
    parser.add_argument("--tickers", type=bounded(1, 20000, integer=True), default=600,
                        help="universe size (default 600)")
    parser.add_argument(
        "--end-date",
        type=cli.day_arg,
        default=DEFAULT_END_DATE,
        help=f"last market day (default {DEFAULT_END_DATE})",
    )
    parser.add_argument(
        "--days",
        type=bounded(1, 3650, integer=True),
        default=DEFAULT_DAYS,
        help=f"calendar days of history before the end date (default {DEFAULT_DAYS})",
    )
    parser.add_argument("--bad-rows", action="store_true", help="put deliberately bad rows in flat files")
    parser.add_argument("--duplicate-split", action="store_true",
                        help="list the reverse split twice, five sessions apart, as the vendor did for SHOP")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=None,
        help=f"data shapes to serve: {'; '.join(f'{p.name}: {p.description}' for p in PROFILES.values())} "
        f"(default: ${ENV_VAR}, else {DEFAULT})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(   # as every command's: no abbreviations, no URL echoed in a usage error
        prog=cli.prog_override or "python -m kapman.sandbox",
        description="Run the offline market (REST + S3) or write a flat-file mirror.",
        epilog=_spelt(EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve REST and S3 until interrupted",
        epilog=_spelt(EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _market_args(serve)
    serve.add_argument("--mirror-dir", type=Path, help="also write the flat files under DIR")
    serve.add_argument("--rest-port", type=PORT, default=0, help="REST port (default: any free port)")
    serve.add_argument("--s3-port", type=PORT, default=0, help="S3 port (default: any free port)")
    serve.add_argument("--api-key", default="sandbox-key", help="API key the REST server accepts")
    serve.add_argument("--env-file", type=Path,
                       help="write the environment lines to this file too (one of the sandbox's own: a file holding "
                            "other settings, such as .env, is refused)")
    mirror = commands.add_parser(
        "write-mirror",
        help="write flat files to a directory and exit",
        epilog=_spelt(EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mirror.add_argument("directory", type=Path)
    _market_args(mirror)
    db_url_help = "accepted as every command accepts it; the sandbox uses no database"
    # before the subcommand or after it, as ohlcv's (``kapman sandbox -q serve`` was refused)
    cli.add_common_options(parser, db_url_help=db_url_help)
    for sub in (serve, mirror):
        cli.add_common_options(sub, in_subcommand=True, db_url_help=db_url_help)
    return parser


def _market(args: argparse.Namespace) -> Market:
    return Market(
        seed=args.seed,
        n_tickers=args.tickers,
        end_date=args.end_date,
        days=args.days,
        bad_rows=args.bad_rows,
        profile=profile_named(args.profile),
        duplicate_split=args.duplicate_split,
    )


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """A file or directory the sandbox writes: one line naming it when the system refuses."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}",
                          hint="name a writable directory (or file) whose parent exists") from None


#: The first line of an env file the sandbox writes: a file without it is someone's settings, never overwritten.
ENV_FILE_HEADER = "# the offline sandbox's environment (kapman sandbox serve --env-file); rewritten on every start\n"


def _check_targets(env_file: Path | None, directory: Path | None) -> None:
    """Refuse what cannot be written before the market is built (seconds for a large one)."""
    if directory is not None and directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file, not a directory")
    if env_file is not None and (env_file.is_dir() or not env_file.parent.is_dir()):
        raise ConfigError(f"cannot write {env_file}: " + ("it is a directory" if env_file.is_dir()
                                                          else f"{env_file.parent} is not a directory"))
    if env_file is not None and env_file.is_file() and not _written_by_the_sandbox(env_file):
        # --env-file .env replaced the real settings (DATABASE_URL, the API keys) with the sandbox's
        raise ConfigError(f"refusing to overwrite {env_file}: it holds settings the sandbox did not write",
                          hint="name a file of the sandbox's own, e.g. --env-file .env.sandbox")


#: The keys kapman.sandbox.environment writes.
SANDBOX_KEYS = {"POLYGON_BASE_URL", "POLYGON_API_KEY", "POLYGON_RATE_LIMIT", "FLATFILES_ENDPOINT", "FLATFILES_BUCKET",
                "FLATFILES_ACCESS_KEY_ID", "FLATFILES_SECRET_ACCESS_KEY", "FLATFILES_MIRROR_DIR", "KAPMAN_NOW"}


def _written_by_the_sandbox(path: Path) -> bool:
    """Empty, begun with ENV_FILE_HEADER, or written before the header was: the sandbox's keys alone, its REST
    server on this machine."""
    with _writing(path):
        text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip() or text.startswith(ENV_FILE_HEADER):
        return True
    pairs = [line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    values = {pair[0]: pair[1] for pair in pairs if len(pair) == 2}
    return (len(values) == len(pairs) and set(values) <= SANDBOX_KEYS
            and values.get("POLYGON_BASE_URL", "").startswith("http://127.0.0.1:"))


def _serve(args: argparse.Namespace) -> int:
    from kapman.sandbox.s3 import SandboxS3  # moto: the 'sandbox' extra, needed only to serve

    _check_targets(args.env_file, args.mirror_dir)
    market = _market(args)
    started = time.perf_counter()
    mirror_dir = None
    if args.mirror_dir:
        with _writing(args.mirror_dir):
            write_mirror(market, args.mirror_dir)
        mirror_dir = args.mirror_dir.resolve()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with (
        SandboxRestServer(market, api_key=args.api_key, port=args.rest_port) as rest,
        SandboxS3(market, port=args.s3_port) as s3,
    ):
        rest.flatfiles = s3  # POST $POLYGON_BASE_URL/_sandbox/flatfiles controls the bucket
        env = environment(market, rest, s3, mirror_dir)
        lines = "".join(f"{k}={v}\n" for k, v in env.items())
        print(json.dumps(env, sort_keys=True) if args.json else lines, end="\n" if args.json else "", flush=True)
        if args.env_file:
            with _writing(args.env_file):
                args.env_file.write_text(ENV_FILE_HEADER + lines)
        if not args.quiet:
            print(
                f"# {market!r}: {len(market.trading_days)} trading days, ready in "
                f"{time.perf_counter() - started:.1f}s; Ctrl-C to stop",
                file=sys.stderr,
                flush=True,
            )
        stop.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.configure_logging(args)
    if args.command == "write-mirror":
        _check_targets(None, args.directory)
        with _writing(args.directory):
            paths = write_mirror(_market(args), args.directory)
        cli.emit(args, f"wrote {len(paths)} files under {args.directory}",
                 {"files": len(paths), "directory": str(args.directory)})
        return 0
    return _serve(args)


if __name__ == "__main__":
    cli.entrypoint(main)
