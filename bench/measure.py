"""A command's own peak memory, whatever ran before it, and the machine's load beside the figures.

``run_command`` starts ``python -m bench.measure <module> <args>`` as a child (reaped with
``os.wait4``).  Inside the child this module runs the command as ``__main__`` and, as it exits,
writes to the file named by ``KAPMAN_BENCH_PEAK_FILE`` its own peak resident set (``VmHWM`` of
/proc/self/status: the main process alone) and its largest reaped child's (``RUSAGE_CHILDREN``:
a worker process).

Neither ``resource.getrusage(RUSAGE_CHILDREN)`` in the benchmark (the largest child it ever
waited for: whichever suite ran first) nor the ``ru_maxrss`` that ``os.wait4`` returns is such a
figure: Linux carries a process's RSS high-water mark across fork and exec, so a child started by
a 4 GiB benchmark process reports at least 4 GiB.  ``VmHWM`` belongs to the address space the
exec created.  (A worker's figure has the same floor: its parent's size when it was started.)

    python -m bench.measure scripts.ingest_ohlcv base --days 30     # the command, then its peaks
"""

from __future__ import annotations

import json
import os
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PEAK_FILE = "KAPMAN_BENCH_PEAK_FILE"
GIB = 1024  # MiB


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    wall: float          # seconds, interpreter start-up included
    main_mib: float      # the command's own process alone (VmHWM)
    children_mib: float  # its largest reaped child (a worker process), 0 without any

    @property
    def peak_mib(self) -> float:
        """The largest of the command's processes."""
        return max(self.main_mib, self.children_mib)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def load_text() -> str:
    one, five, fifteen = load_average()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def run_command(module: str, args: Sequence[str], env: Mapping[str, str] | None = None,
                cwd: str | Path | None = None) -> Measured:
    """Run ``python -m module args`` in a child and measure that child alone."""
    with tempfile.TemporaryDirectory(prefix="kapman-measure-") as tmp:
        out, err, peaks = (Path(tmp, name) for name in ("stdout", "stderr", "peaks.json"))
        with open(out, "wb") as fo, open(err, "wb") as fe:
            started = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "bench.measure", module, *args], stdout=fo, stderr=fe,
                                    env={**(env if env is not None else os.environ), PEAK_FILE: str(peaks)},
                                    cwd=cwd)
            _, status, _ = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        own = json.loads(peaks.read_text()) if peaks.exists() else {"self": 0, "children": 0}
        return Measured(proc.returncode, out.read_text(errors="replace"), err.read_text(errors="replace"), wall,
                        own["self"] / 1024, own["children"] / 1024)


def _record_peaks() -> None:
    path = os.environ.get(PEAK_FILE)
    if path:
        Path(path).write_text(json.dumps({"self": _vm_hwm_kib(),
                                          "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))


def _vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the best there is


def main(argv: Sequence[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    module, *rest = argv
    sys.argv = [module, *rest]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        _record_peaks()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
