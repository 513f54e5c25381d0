"""What every benchmark shares: a scratch database, medians, and a table of figures vs targets."""

from __future__ import annotations

import os
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from kapman.db.connect import with_database
from kapman.db.rebuild import rebuild

DEFAULT_ADMIN_URL = "postgresql://kapman:kapman-local-dev@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get("KAPMAN_BENCH_DATABASE_URL") or os.environ.get("KAPMAN_TEST_DATABASE_URL") \
        or DEFAULT_ADMIN_URL


@contextmanager
def scratch_database(label: str) -> Iterator[str]:
    """A rebuilt database named kapman_bench_<label>_<random>, dropped afterwards."""
    admin = admin_url()
    name = f"kapman_bench_{label}_{secrets.token_hex(3)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(admin, name)
    try:
        rebuild(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def kapman_now(instant: datetime) -> Iterator[None]:
    """KapMan's clock frozen at ``instant`` in this process (``KAPMAN_NOW``), restored afterwards."""
    saved = os.environ.get("KAPMAN_NOW")
    os.environ["KAPMAN_NOW"] = instant.isoformat()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("KAPMAN_NOW", None)
        else:
            os.environ["KAPMAN_NOW"] = saved


def edition_license(label: str) -> str | None:
    """``timescaledb.license`` of a scratch database (see ``timescaledb_license``)."""
    with scratch_database(f"{label}_probe") as url:
        return timescaledb_license(url)


def timescaledb_license(url: str) -> str | None:
    """``timescale`` on the community edition (compression, policies, jobs), ``apache`` on the
    Apache-2 edition; read where the extension is loaded (the admin database may lack it)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
    return row[0] if row else None


def edition_skip(lic: str | None) -> str:
    """Why a community-edition figure is not taken on this server."""
    return f"timescaledb.license = {lic} on {admin_url().rsplit('@', 1)[-1]}; needs timescale"


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median_seconds(fn: Callable[[], object], repeat: int = 3, setup: Callable[[], object] | None = None) -> float:
    runs = []
    for _ in range(repeat):
        if setup:
            setup()
        runs.append(timed(fn))
    return statistics.median(runs)


@dataclass
class Figure:
    bench: str
    name: str
    value: float | None      # None: the suite skipped it (the name says why); no figure is printed
    unit: str
    target: str = ""
    ok: bool | None = None

    def as_dict(self) -> dict:
        return {"bench": self.bench, "name": self.name, "value": self.value, "unit": self.unit,
                "target": self.target, "ok": self.ok}


def print_table(figures: list[Figure]) -> None:
    width = max((len(f"{f.bench}: {f.name}") for f in figures), default=0)
    for f in figures:
        status = "" if f.ok is None else ("  ok" if f.ok else "  MISSED")
        if f.value is None:
            print(f"{f'{f.bench}: {f.name}':<{width}}  {'skipped':>14}")
            continue
        value = f"{f.value:,.3f}" if abs(f.value) < 100 else f"{f.value:,.0f}"
        target = f"  (target {f.target})" if f.target else ""
        print(f"{f'{f.bench}: {f.name}':<{width}}  {value:>14} {f.unit:<10}{target}{status}")


def memory_figure(bench: str, step: str, mib: float, budget_mib: float | None, what: str = "main process",
                  load: str = "") -> Figure:
    """A command's peak resident memory with its budget beside it (and the load it was taken at)."""
    at = f", load {load}" if load else ""
    return Figure(bench, f"{step} peak memory ({what}{at})", mib, "MiB",
                  f"< {budget_mib:.0f}" if budget_mib else "", mib < budget_mib if budget_mib else None)


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds of a process (this one, all its threads, by default), or of the whole machine for
    ``pid=0`` (busy time of every core, from /proc/stat); NaN where /proc cannot tell."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        if pid == 0:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            return (sum(fields) - fields[3] - fields[4]) / tick  # minus idle and iowait
        if pid is None:
            return time.process_time()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / tick
    except (OSError, ValueError, IndexError):
        return float("nan")


def load_figure(bench: str, when: str) -> Figure:
    """The machine's load average (1, 5, 15 minutes) at the start or end of a suite."""
    one, five, fifteen = os.getloadavg()
    return Figure(bench, f"load average at {when} (1/5/15 min: {one:.2f} {five:.2f} {fifteen:.2f})", one, "load")
