"""``kapman export``: ohlcv, daily_snapshots (flattened) and options_chains as Parquet, one file per date.

Layout: ``DIR/<table>/<YYYY-MM-DD>.parquet``, each file with its ``date`` and ``symbol`` columns,
so any reader takes a table whole with a glob and nothing else: ``pd.read_parquet("DIR/ohlcv")``,
``pl.read_parquet("DIR/ohlcv/*.parquet")``, DuckDB ``FROM 'DIR/ohlcv/*.parquet'``.  Each file
records what it was written from, the date's row count, latest ``updated_at`` and their sum (every
KapMan writer sets it on a row it changes): a later run writes the dates without a file and the dates
whose rows changed since (recomputed, reloaded, deleted), and reads nothing else (``--force``
rewrites every date); the file of a date inside the table's stored span that lost every row is
removed.  Each file also records its warehouse (``kapman.archive.warehouse``): a directory holding
another warehouse's files is refused, as a glob over it would read both as one.
Each file is written beside its final name and renamed into place, so an interrupted run leaves
no half file.  zstd, with the float columns byte-stream-split (about 590 bytes a row of flattened
A2 where plain zstd gives about 700).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from kapman import calendar, cli
from kapman.archive import warehouse
from kapman.clock import ny_date_of
from kapman.config import PROJECT_ROOT, bounded
from kapman.data import api
from kapman.data.copy import copy_table, epoch_us
from kapman.db.connect import connect
from kapman.errors import InputError, UsageError
from kapman.params import WORKERS_RANGE, date_span
from kapman.progress import NullProgress, Progress, for_terminal
from kapman.step import StepResult

TABLES = ("ohlcv", "daily_snapshots", "options_chains")
DEFAULT_DIR = PROJECT_ROOT / "export"

EXAMPLES = """
  kapman export                                   # every date not yet exported, all three tables, into export/
  kapman export --tables daily_snapshots --to /data/kapman --start-date 2024-01-01
  kapman export --tables ohlcv --date 2025-12-19 --force        # write that date again, changed or not
  duckdb -c "SELECT date, avg(\\"momentum.rsi.rsi\\") FROM 'export/daily_snapshots/*.parquet' GROUP BY 1"
"""

#: What each table holds per stored date in a range: rows and the latest ``updated_at`` (the Parquet dates
#: are New York dates; a snapshot time is mapped to its date on the client).
_AGGREGATE = f"count(*), max(updated_at), sum({epoch_us('updated_at')})"
_STORED = {
    "ohlcv": f"SELECT date, {_AGGREGATE} FROM public.ohlcv WHERE {{}} GROUP BY 1",
    "daily_snapshots": f"SELECT time, {_AGGREGATE} FROM public.daily_snapshots WHERE {{}} GROUP BY 1",
    "options_chains": f"SELECT time, {_AGGREGATE} FROM public.options_chains WHERE {{}} GROUP BY 1",
}
#: The keys of a file's metadata that hold the stamp of what it was written from, and its warehouse.
STAMP_KEY = b"kapman.stamp"
WAREHOUSE_KEY = b"kapman.warehouse"


@dataclass(frozen=True)
class Stamp:
    """What a date held when it was read: its rows, their latest ``updated_at`` and the sum of them all (in
    microseconds).  A date whose stamp differs from its file's changed since (rows recomputed, reloaded,
    added or deleted).  The sum sees a row whose ``updated_at`` changed below the latest: a restore's rows
    keep their archived (older) stamps, and a writer's ``now()`` is its transaction's start, so a write
    committed after an export read the date can carry a stamp older than that date's latest."""

    rows: int
    updated: datetime
    total: int = 0

    def encode(self) -> bytes:
        return f"{self.rows} {self.updated.isoformat()} {self.total}".encode()

    def matches(self, recorded: bytes | None) -> bool:
        """Whether a file's recorded stamp is this one (a file stamped before the sum: its rows and latest)."""
        if recorded is not None and recorded.count(b" ") == 1:
            return recorded == f"{self.rows} {self.updated.isoformat()}".encode()
        return recorded == self.encode()

    def merge(self, other: Stamp) -> Stamp:
        return Stamp(self.rows + other.rows, max(self.updated, other.updated), self.total + other.total)


def stored_stamps(conn: psycopg.Connection, table: str, dates: api.Dates) -> dict[date, Stamp]:
    """Each stored date of ``table`` in ``dates`` with its stamp."""
    condition = dates.on("date") if table == "ohlcv" else dates.on_time("time")
    found: dict[date, Stamp] = {}
    for key, rows, updated, total in conn.execute(sql.SQL(_STORED[table]).format(condition)):
        day = key if table == "ohlcv" else ny_date_of(key)
        stamp = Stamp(rows, updated, int(total))
        found[day] = found[day].merge(stamp) if day in found else stamp
    return dict(sorted(found.items()))


#: Each table's first and last stored instant (its dates' span).
_SPAN = {"ohlcv": "SELECT min(date), max(date) FROM public.ohlcv",
         "daily_snapshots": "SELECT min(time), max(time) FROM public.daily_snapshots",
         "options_chains": "SELECT min(time), max(time) FROM public.options_chains"}


def stored_span(conn: psycopg.Connection, table: str) -> api.Dates | None:
    """The New York dates from a table's first stored row to its last; None when it is empty.  A date inside
    it that holds no row lost its rows after its file was written; one before it is past retention."""
    first, last = conn.execute(_SPAN[table]).fetchone() or (None, None)
    if first is None:
        return None
    return api.Dates(first, last) if table == "ohlcv" else api.Dates(ny_date_of(first), ny_date_of(last))


def file_record(path: Path) -> tuple[bytes | None, str | None]:
    """(the stamp, the warehouse) a file was written with; None for what it lacks or when it cannot be
    read (a file written before stamps, or damaged: written again)."""
    try:
        found = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None, None
    owner = found.get(WAREHOUSE_KEY)
    return found.get(STAMP_KEY), owner.decode("utf-8", "replace") if owner is not None else None


def options_of(conn: psycopg.Connection, span: api.Dates) -> pa.Table:
    """Every option snapshot row of some New York dates, with its symbol and date."""
    names = [f.name for f in api.CHAIN_SCHEMA if f.name not in ("symbol", "time")]
    query = sql.SQL("SELECT t.symbol, (o.time AT TIME ZONE 'America/New_York')::date, {time}, {rest} "
                    "FROM public.options_chains o "
                    "JOIN public.tickers t ON t.id = o.ticker_id WHERE {within} "
                    "ORDER BY t.symbol, o.time, o.expiration_date, o.strike_price, o.option_type").format(
        time=sql.SQL(epoch_us("o.time")),
        rest=sql.SQL(", ").join(sql.SQL("o.strike_price::float8" if n == "strike_price" else f"o.{n}")
                                for n in names),
        within=span.on_time("o.time"))
    schema = pa.schema([api.CHAIN_SCHEMA.field("symbol"), pa.field("date", pa.date32()),
                        api.CHAIN_SCHEMA.field("time")] + [api.CHAIN_SCHEMA.field(n) for n in names])
    return copy_table(conn, query, schema)


#: Each table's rows of a span of dates (one query: its planning over the hypertable's chunks is paid once).
READERS: dict[str, Callable[[psycopg.Connection, api.Dates], pa.Table]] = {
    "ohlcv": lambda conn, span: api.bars(conn, start=span.start, end=span.end, arrow=True),  # type: ignore[return-value,arg-type]
    "daily_snapshots": lambda conn, span: api.snapshots(conn, start=span.start, end=span.end,  # type: ignore[return-value,arg-type]
                                                        arrow=True),
    "options_chains": options_of,
}
#: Dates read by one query: enough to pay a query's fixed cost once for many small dates, few enough that a
#: full-market batch (~11,000 rows a date) stays around 100 MB.
BATCH_DATES = 10


def batches(days: list[date], todo: set[date]) -> list[list[date]]:
    """Runs of consecutive stored dates still to write, at most BATCH_DATES long (no written date inside
    a run, so a run's query reads only dates it writes)."""
    runs: list[list[date]] = []
    for day in days:
        if day not in todo:
            runs.append([])
        elif runs and runs[-1] and len(runs[-1]) < BATCH_DATES:
            runs[-1].append(day)
        else:
            runs.append([day])
    return [run for run in runs if run]


def by_date(rows: pa.Table, days: list[date]) -> Iterator[tuple[date, pa.Table]]:
    """Each of ``days`` with its rows, in their order within the day: the table is put in date order once
    (a stable sort) and each date is a slice of it, not a filter over every column per date."""
    ordered = rows.take(pc.sort_indices(rows.column("date"))) if rows.num_rows else rows
    on = ordered.column("date").to_numpy().astype("datetime64[D]")
    wanted = np.array(days, dtype="datetime64[D]")
    starts, ends = np.searchsorted(on, wanted, "left"), np.searchsorted(on, wanted, "right")
    for day, lo, hi in zip(days, starts, ends, strict=True):
        yield day, ordered.slice(lo, hi - lo)


def write_parquet(table: pa.Table, path: Path, stamp: Stamp | None = None, warehouse: str = "") -> int:
    """``table`` at ``path`` (with ``stamp`` and ``warehouse`` in its metadata), written beside it and
    renamed into place; its size in bytes."""
    record = {STAMP_KEY: stamp.encode()} if stamp is not None else {}
    if warehouse:
        record[WAREHOUSE_KEY] = warehouse.encode()
    if record:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **record})
    floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    texts = [f.name for f in table.schema if pa.types.is_string(f.type)]
    # a name of this write's own: two exports into one directory (a nightly's and one by hand) write the same
    # date at once, and on a shared name one renamed the other's file away from under it
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, partial, compression="zstd", use_dictionary=texts, use_byte_stream_split=floats)
        os.replace(partial, path)
        return path.stat().st_size
    except OSError as exc:  # a full disk, a file where a directory goes: the files written so far stay
        raise InputError(f"cannot write {path}: {exc.strerror or exc}",
                         hint="check --to: a writable directory with room; the files already written are kept "
                              "and a rerun writes only the dates still missing") from None
    finally:   # whatever stopped the write (an error, Ctrl-C), its temporary file goes with it
        if partial.parent.is_dir():
            partial.unlink(missing_ok=True)


@dataclass
class ExportParams:
    directory: Path = DEFAULT_DIR
    tables: Sequence[str] = TABLES
    dates: api.Dates = field(default_factory=api.Dates)
    force: bool = False
    workers: int = 2
    warehouse: str = ""     # recorded in every file: a directory holds one warehouse's files


@dataclass
class Written:
    rows: int = 0
    bytes: int = 0
    files: int = 0
    skipped: int = 0
    changed: int = 0     # dates with a file written again because their rows changed since
    removed: int = 0     # files of dates whose rows were all deleted since
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, rows: int, size: int) -> None:
        with self.lock:
            self.rows, self.bytes, self.files = self.rows + rows, self.bytes + size, self.files + 1


@dataclass
class ExportDetails:
    directory: str = ""
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)   # table -> files, rows, bytes, skipped, changed

    def as_dict(self) -> dict[str, Any]:
        return {**self.tables, "directory": self.directory}


def _path(params: ExportParams, table: str, day: date) -> Path:
    return params.directory / table / f"{day.isoformat()}.parquet"


def export(url: str, params: ExportParams, progress: Progress | None = None) -> StepResult[ExportDetails]:
    """Write each table's dates that have no file yet or whose rows changed since theirs (all with
    ``force``); one connection per worker."""
    result = StepResult("export", unit="files", details=ExportDetails(str(params.directory)))
    _check_directory(params)
    written: dict[str, Written] = {}
    stamps: dict[str, dict[date, Stamp]] = {}
    emptied: list[tuple[str, Path]] = []
    with connect(url) as conn:
        jobs: list[tuple[str, list[date]]] = []
        for table in params.tables:
            stats = written.setdefault(table, Written())
            stamps[table] = stored_stamps(conn, table, params.dates)
            span = stored_span(conn, table)
            days = list(stamps[table])
            todo = set(days) if params.force else set()
            present: set[date] = set()
            for path in sorted((params.directory / table).glob("*.parquet")):
                stamp, owner = file_record(path)
                _check_owner(params, path, owner)
                day = _day_of(path)
                if day is None:
                    continue
                present.add(day)
                if day not in stamps[table] and params.dates.holds(day) and span and span.holds(day):
                    emptied.append((table, path))
                if day in stamps[table] and not params.force and not stamps[table][day].matches(stamp):
                    todo.add(day)
                    stats.changed += 1
            todo |= set(days) - present    # the directory was just listed: no look per date
            stats.skipped = len(days) - len(todo)
            jobs += [(table, run) for run in batches(days, todo)]
        for table in set(TABLES) - set(params.tables):   # the tables not exported now share the directory too
            for path in (params.directory / table).glob("*.parquet"):
                _check_owner(params, path, file_record(path)[1])
    for table, path in emptied:   # only now: a refused directory (another warehouse's) loses nothing
        path.unlink(missing_ok=True)
        written[table].removed += 1
    stored = sum(len(found) for found in stamps.values())
    if not stored and not emptied:   # the tables (or dates asked for) hold nothing: not an export up to date
        result.nothing(_nothing_stored(params))
        return result
    local = threading.local()
    connections: list[psycopg.Connection] = []

    def one(job: tuple[str, list[date]]) -> int:
        table, days = job
        if not hasattr(local, "conn"):
            local.conn = connect(url)
            connections.append(local.conn)
        rows = READERS[table](local.conn, api.Dates(days[0], days[-1]))
        for day, part in by_date(rows, days):
            written[table].add(part.num_rows, write_parquet(part, _path(params, table, day), stamps[table][day],
                                                            params.warehouse))
        return len(days)

    bar = progress or NullProgress()
    bar.start(sum(len(days) for _, days in jobs), "export", "files")
    try:
        with ThreadPoolExecutor(max_workers=max(1, params.workers)) as pool:
            for count in pool.map(one, jobs):
                bar.advance(count)
    finally:
        bar.close()
        for conn in connections:
            conn.close()
    for table, stats in written.items():
        result.done += stats.files
        result.removed += stats.removed
        result.details.tables[table] = {"files": stats.files, "rows": stats.rows, "bytes": stats.bytes,
                                 "skipped": stats.skipped, "changed": stats.changed, "removed": stats.removed,
                                 "bytes_per_row": round(stats.bytes / stats.rows, 1) if stats.rows else None}
    files, rows = sum(w.files for w in written.values()), sum(w.rows for w in written.values())
    skipped, changed = sum(w.skipped for w in written.values()), sum(w.changed for w in written.values())
    removed = sum(w.removed for w in written.values())
    result.headline = (f"{files} files, {rows:,} rows, {sum(w.bytes for w in written.values()) / 2**20:.1f} MiB "
                       f"into {params.directory}" + (f", {changed} of them dates whose rows changed since their "
                                                     "file" if changed else "")
                       + (f"; {skipped} already there" if skipped else "")
                       + (f"; {removed} removed, of dates whose rows were all deleted since" if removed else ""))
    return result


def _day_of(path: Path) -> date | None:
    """The date of an export's file (``YYYY-MM-DD.parquet``, as ``_path`` names it); None for another name."""
    try:
        day = date.fromisoformat(path.stem)
    except ValueError:
        return None
    return day if day.isoformat() == path.stem else None   # fromisoformat also takes 20251219


def _check_directory(params: ExportParams) -> None:
    """--to is a directory (or none yet) that is not inside a table's directory of an export: ``pd.read_parquet``
    of that table reads its subdirectories too, so this export's files would read as its rows."""
    to = params.directory
    if to.is_symlink() and not to.exists():
        raise UsageError(f"--to {to} is a link to {os.readlink(to)}, which does not exist")
    if to.exists() and not to.is_dir():
        raise UsageError(f"--to {to} is a file, not a directory")
    absolute = to.resolve()
    for place in (absolute, *absolute.parents):
        if (place == absolute or place.name in TABLES) and _holds_export_files(place):
            where = "holds an export's dated files" if place == absolute else f"is inside {place}, which does"
            raise UsageError(f"--to {to} {where}: it is a table's directory of an export, and every reader of "
                             "that table would read this export's files as its rows",
                             hint=f"name the export's own directory ({place.parent}), or one outside it")


def _holds_export_files(place: Path) -> bool:
    """Whether ``place`` holds an export's dated file (one with a stamp): it is a table's directory."""
    for path in place.glob("????-??-??.parquet") if place.is_dir() else ():
        if _day_of(path) is not None and file_record(path)[0] is not None:
            return True
    return False


def _check_owner(params: ExportParams, path: Path, owner: str | None) -> None:
    """A directory holding another warehouse's files (a sandbox's beside a real one's) is refused: rewriting
    some of its dates would leave the rest, and every glob over it would read two warehouses as one."""
    if owner is None or not params.warehouse or owner == params.warehouse:
        return
    raise UsageError(f"{params.directory} holds files exported from another warehouse ({owner}; e.g. {path.name} "
                      f"of {path.parent.name}); this is {params.warehouse}: nothing was written",
                      hint="export into a directory of its own (--to DIR), or move that warehouse's files away; if "
                           "it is this warehouse under another host name, set KAPMAN_WAREHOUSE to its name")


def _nothing_stored(params: ExportParams) -> str:
    span = params.dates
    if span.start == span.end and span.start is not None:
        asked = f"on {span.start}" + ("" if calendar.is_trading_day(span.start) else " (not a trading day)")
    elif span.start and span.end:
        asked = f"from {span.start} to {span.end}"
    elif span.start or span.end:
        asked = f"from {span.start} on" if span.start else f"up to {span.end}"
    else:
        asked = "at all"
    return f"no {', '.join(params.tables)} rows stored {asked}: nothing to export"


def _tables(text: str) -> list[str]:
    # each table once: a table named twice would write each of its dates twice at once, through one temp file
    chosen = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [t for t in chosen if t not in TABLES]
    if unknown or not chosen:
        raise UsageError(f"--tables: {', '.join(unknown) or 'none given'}; choose from {', '.join(TABLES)}")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m kapman.export",
                   "Export ohlcv, daily_snapshots (flattened: one column per stored key, as kapman.data names "
                   "them) and options_chains to Parquet, one zstd file per table and New York date with its "
                   "symbol and date columns: DIR/<table>/<YYYY-MM-DD>.parquet. Only dates without a file, or whose "
                   "rows changed since their file was written (recomputed, reloaded, deleted), are written "
                   "(--force rewrites them all), and a date that lost every row has its file removed; pandas, "
                   "polars and DuckDB read a table by its glob. A directory holding another warehouse's files "
                   "(a sandbox's), or a table's directory of an export, is refused, exit 2.",
                   EXAMPLES)
    p.add_argument("--to", type=cli.directory_arg("--to", DEFAULT_DIR), default=DEFAULT_DIR, metavar="DIR",
                   help="where the files go")
    p.add_argument("--tables", type=_tables, default=list(TABLES), metavar="T1,T2",
                   help=f"which tables (default: {','.join(TABLES)})")
    cli.add_date_options(p, "every stored date")
    p.add_argument("--force", action="store_true",
                   help="rewrite every date, even those whose file is up to date")
    p.add_argument("--workers", type=bounded(WORKERS_RANGE.low, WORKERS_RANGE.high, integer=True), default=2,
                   metavar="N", help="connections reading at once (default 2)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    date_span(args.date, args.start_date, args.end_date, open_ended=True)   # refused by the flags' names
    dates = api.Dates.of(args.date, args.start_date, args.end_date)
    result = export(settings.require_database_url(),
                    ExportParams(args.to, args.tables, dates, args.force, args.workers,
                                 warehouse.of(settings).describe()),
                    for_terminal(args.quiet or args.json))
    return cli.finish(args, result)


if __name__ == "__main__":
    cli.entrypoint(main)
