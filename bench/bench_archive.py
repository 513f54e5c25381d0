"""The options archive's cost, restore throughput, and the options command's own peak memory.

Runs beside bench_options (its sandbox server and scratch database, after its timed runs):

- the real ``scripts.ingest_options`` in a child measured alone (bench/measure.py), ``repeat``
  pairs of runs, one with ``--no-archive`` and one archiving into a new scratch directory: the
  main process's peak memory (budget < 1 GiB) and the largest worker's; the archive's cost as the
  archiving run's time over the other's, each as the command reports its own time (the archive's
  work during and after the run included), median of the pairs (target <= 1.10), with the
  commands' wall times (interpreter start included) beside it;
- the restore (``kapman.archive.restore.run``: read, verify, decode, encode, write_group per file)
  into the emptied table, against a bare binary COPY of the same rows per file, payloads encoded
  before the clock starts (target >= 0.7).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.measure import GIB, load_text, run_command

ARCHIVE_TARGET, RESTORE_TARGET = 1.10, 0.7


def _row(name: str, value: float, unit: str, target: str | None = None, ok: bool = True) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "target": target, "ok": ok}


def _options_command(url: str, env: dict[str, str], args: list[str]) -> tuple[Any, dict]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE public.options_chains")
    run = run_command("scripts.ingest_options", ["--db-url", url, "--json", "-q", *args], env)
    if run.returncode != 0:
        raise RuntimeError(f"ingest_options exited {run.returncode}: {run.stderr.strip()[-500:]}")
    return run, json.loads(run.stdout)


def _bare_copy(url: str, payloads: list[bytes]) -> float:
    from kapman.archive import table
    from kapman.db import bulk

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE public.options_chains")
        started = time.perf_counter()
        for payload in payloads:
            with conn.transaction(), conn.cursor() as cur:
                bulk.copy_binary(cur, sql.Identifier("public", table.TABLE), table.NAMES, payload)
        return time.perf_counter() - started


def _payloads(root: Path) -> list[bytes]:
    """Every archived file's rows as the binary COPY payload the restore would send."""
    import pyarrow.parquet as pq

    from kapman.archive import table

    return [table.to_payload(table.from_file(pq.read_table(p))[0]) for p in sorted(root.rglob("*.parquet"))]


def _restore(url: str, root: Path, base_url: str) -> tuple[float, int]:
    from kapman.archive import restore
    from kapman.config import Settings

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE public.options_chains")
    started = time.perf_counter()  # the sandbox warehouse that wrote the archive
    result = restore.run(Settings(database_url=url, archive_location=str(root), polygon_base_url=base_url),
                         restore.RestoreParams())
    seconds = time.perf_counter() - started
    if result.exit_code != 0:
        raise RuntimeError(result.summary())
    return seconds, result.written


def run(url: str, base_url: str, api_key: str, now: str, concurrency: int, workers: int | None,
        repeat: int = 3) -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="kapman-bench-archive-") as tmp:
        env = {**os.environ, "POLYGON_BASE_URL": base_url, "POLYGON_API_KEY": api_key, "POLYGON_RATE_LIMIT": "1000",
               "KAPMAN_NOW": now, "KAPMAN_ENV_FILE": "/nonexistent"}
        args = ["--concurrency", str(concurrency), *(["--workers", str(workers)] if workers is not None else [])]
        ratios, walls, runs = [], [], []
        for i in range(repeat):  # pairs, alternating, so that drift in the machine's load hits both
            root = Path(tmp, f"archive-{i}")  # a new snapshot each time, not a replay of the last
            bare_run, bare = _options_command(url, {**env, "KAPMAN_ARCHIVE_DIR": str(root)}, [*args, "--no-archive"])
            load_bare = load_text()
            archived_run, archived = _options_command(url, {**env, "KAPMAN_ARCHIVE_DIR": str(root)}, args)
            load_archived = load_text()
            export = archived["archive"]
            if not export["ok"]:
                raise RuntimeError(f"archive failed: {export['error']}")
            ratios.append(archived["seconds"] / bare["seconds"])
            walls.append(archived_run.wall / bare_run.wall)
            runs.append((bare_run, archived_run, export))
            print(f"  options command {i + 1}: --no-archive {bare['seconds']:.2f}s (wall {bare_run.wall:.2f}s, load "
                  f"{load_bare}); archiving {archived['seconds']:.2f}s of which {export['seconds']:.2f}s after the "
                  f"run, {export['overlapped']:.2f}s exporting while it fetched (wall {archived_run.wall:.2f}s, "
                  f"load {load_archived}); {export['files']} files, {export['rows']:,} rows, "
                  f"{export['bytes'] / 1e6:.1f} MB; main process {archived_run.main_mib:,.0f} MiB, largest worker "
                  f"{archived_run.children_mib:,.0f} MiB", file=sys.stderr, flush=True)
        cost, wall = statistics.median(ratios), statistics.median(walls)
        export = runs[-1][2]
        main_mib = max(max(b.main_mib, a.main_mib) for b, a, _ in runs)
        worker_mib = max(max(b.children_mib, a.children_mib) for b, a, _ in runs)
        rows += [
            _row(f"command peak memory, main process (load {load_archived})", round(main_mib), "MiB",
                 f"< {GIB}", main_mib < GIB),
            _row(f"command peak memory, largest worker (load {load_archived})", round(worker_mib), "MiB"),
            _row("archive work after the run (median)", round(statistics.median(r[2]["seconds"] for r in runs), 2),
                 "s"),
            _row("archive work while the run fetched (median)",
                 round(statistics.median(r[2]["overlapped"] for r in runs), 2), "s"),
            _row(f"archive size ({export['files']} files, {export['rows']:,} rows)", round(export["bytes"] / 1e6, 1),
                 "MB"),
            _row(f"run with archive / --no-archive, command's own time (median of {repeat} pairs)", round(cost, 3),
                 "x", f"<= {ARCHIVE_TARGET}", cost <= ARCHIVE_TARGET),
            _row(f"command wall, archiving / --no-archive (median of {repeat} pairs)", round(wall, 3), "x"),
        ]
        payloads = _payloads(root)
        bare_s = _bare_copy(url, payloads)
        restore_s, restored = _restore(url, root, base_url)
        load_restore = load_text()
        if restored != export["rows"]:
            raise RuntimeError(f"restored {restored} rows of {export['rows']}")
        ratio = (restored / restore_s) / (restored / bare_s)
        print(f"  restore: {restored:,} rows in {restore_s:.2f}s vs bare COPY {bare_s:.2f}s (load {load_restore})",
              file=sys.stderr, flush=True)
        rows += [
            _row("restore from the archive", round(restored / restore_s), "contracts/s"),
            _row("bare binary COPY of the same rows", round(restored / bare_s), "contracts/s"),
            _row(f"restore / bare COPY (load {load_restore})", round(ratio, 3), "x", f">= {RESTORE_TARGET}",
                 ratio >= RESTORE_TARGET),
        ]
    return rows
