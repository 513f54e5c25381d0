"""The worker processes that run ``process.process_pages``, and how many there may be.

The pool uses the "spawn" start method (forking a process that runs threads is unsafe).  Its
processes start at once, one no-op task each, so that they boot while the first chains are
fetched.  If a process cannot start or dies, the pool is given up for the rest of the run and
chains are processed in the calling thread instead, with a warning.

A worker never outlives the run's process: when the parent dies, even by ``kill -9``, the kernel
kills it (``PR_SET_PDEATHSIG`` on Linux), and a watchdog thread that sees the parent gone ends it
elsewhere.  The multiprocessing resource tracker then ends by itself, its last writer gone,
after unlinking the pool's semaphores; it is started told not to warn about them
(``_quiet_tracker``): cleaning up after a killed run is its job, and its "leaked semaphore
objects" warning only alarmed whoever had killed the run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from uuid import UUID

from kapman.config import NumberRange
from kapman.ingest.options.process import EncodedChain, process_pages
from kapman.providers.polygon import RawPage

log = logging.getLogger(__name__)

#: Worker processes by default, fewer on a machine with fewer CPUs (see ``default_workers``).
DEFAULT_WORKERS = 2
#: The most ``--workers`` accepts: decoding is CPU-bound, so more processes than CPUs only add
#: start-up time and memory (a spawned interpreter is ~30 MB).
MAX_WORKERS = 32
WORKERS_RANGE = NumberRange(0, MAX_WORKERS, integer=True)
#: The cyclic collector's young-generation threshold while chains are decoded (CPython's default:
#: 700).  A page decodes into ~2,500 dicts that live for a few milliseconds.  At the default the
#: collector runs several times per page, promotes the pages in flight to the older generations,
#: and the full collections that follow traverse every row kept so far: a third of the decoding
#: CPU.  At 20,000 the pages die (by reference counting, as before) between collections.  Only
#: reference cycles, which decoding hardly creates, wait for a later collection.
GC_YOUNG_THRESHOLD = 20_000
#: How often a worker's watchdog looks for its parent, in seconds.
WATCHDOG_INTERVAL = 0.5
_PR_SET_PDEATHSIG = 1


def default_workers() -> int:
    """``DEFAULT_WORKERS``, or fewer to leave a CPU to the fetching process and the database: one
    fewer than the CPUs this process may use, at least one.

    On 2 CPUs one worker keeps up with 8 fetch threads at 50 ms a page (bench/bench_options.py:
    the same wall time as two, with one process less to start and schedule).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(DEFAULT_WORKERS, cpus - 1))


def init_worker(parent: int) -> None:
    """A worker process's set-up: it dies with ``parent``; Ctrl-C is the parent's to handle (it
    shuts the pool down); the collector runs less often (``GC_YOUNG_THRESHOLD``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    young, *older = gc.get_threshold()
    if 0 < young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, *older)


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still ends the process
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(WATCHDOG_INTERVAL)
        os._exit(1)  # reparented: the run's process is gone, and so is anyone to report to

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def ready() -> bool:
    """A no-op task: submitting one per worker starts the processes before the first chain is in."""
    return True


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's young-generation threshold for the run, then restore it.

    For chains processed in this process (``workers=0``, or no worker process could start): see
    ``GC_YOUNG_THRESHOLD``, which the worker processes apply to themselves.  Left alone when
    collection is off or already less frequent.
    """
    young, *older = gc.get_threshold()
    if young == 0 or young >= GC_YOUNG_THRESHOLD:
        yield
        return
    gc.set_threshold(GC_YOUNG_THRESHOLD, *older)
    try:
        yield
    finally:
        if gc.get_threshold()[0] == GC_YOUNG_THRESHOLD:  # unless someone else changed it meanwhile
            gc.set_threshold(young, *older)


#: The warning multiprocessing's resource tracker gives when it cleans up after a killed process.
_TRACKER_WARNING = "ignore:resource_tracker:UserWarning"


def _quiet_tracker() -> None:
    """Start this process's resource tracker (if not running yet) with its cleanup warning off.

    The tracker is a child started with this interpreter's ``-W`` options (``sys.warnoptions``),
    so the filter is added for that start only; the workers start without it.
    """
    from multiprocessing import resource_tracker

    sys.warnoptions.append(_TRACKER_WARNING)
    try:
        resource_tracker.ensure_running()
    except OSError:
        pass  # the pool will say why it cannot start
    finally:
        sys.warnoptions.remove(_TRACKER_WARNING)


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes are started (only the main thread can), then restore it.

    A process started with SIGINT ignored keeps it ignored, Python's own handler included, so a
    Ctrl-C while a worker is still booting cannot kill it with a traceback: the parent alone
    handles it, by shutting the pool down.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Processor:
    """Where a chain's pages become an ``EncodedChain``: worker processes, or the calling thread."""

    def __init__(self, workers: int) -> None:
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._retired: list[ProcessPoolExecutor] = []
        self._given_up = False
        if workers > 0:
            try:
                with _sigint_ignored():  # inherited through exec: Ctrl-C never reaches the workers
                    _quiet_tracker()
                    self._pool = ProcessPoolExecutor(
                        workers, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker,
                        initargs=(os.getpid(),),
                    )
                    for _ in range(workers):  # from this thread, so the processes are its children
                        self._pool.submit(ready)
            except (OSError, ImportError, NotImplementedError, BrokenProcessPool) as exc:
                self.give_up(exc)

    def __enter__(self) -> Processor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def give_up(self, exc: BaseException) -> None:
        with self._lock:
            if self._given_up:
                return
            self._given_up = True
            pool, self._pool = self._pool, None
            if pool is not None:
                self._retired.append(pool)
        log.warning("worker processes unavailable (%s: %s); processing chains in this process",
                    type(exc).__name__, exc)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    @property
    def pooled(self) -> bool:
        """Whether chains go to worker processes (else their fetch threads process them)."""
        return self._pool is not None

    def submit(
        self, pages: Sequence[RawPage], snapshot: datetime, ticker_id: UUID, symbol: str
    ) -> Future[EncodedChain]:
        pool = self._pool
        if pool is not None:
            try:
                return pool.submit(process_pages, pages, snapshot, ticker_id, symbol)
            except (BrokenProcessPool, RuntimeError) as exc:  # RuntimeError: given up meanwhile
                self.give_up(exc)
        return self.inline(pages, snapshot, ticker_id, symbol)

    @staticmethod
    def inline(pages: Sequence[RawPage], snapshot: datetime, ticker_id: UUID, symbol: str) -> Future[EncodedChain]:
        return done(lambda: process_pages(pages, snapshot, ticker_id, symbol))

    def close(self) -> None:
        """Cancel what has not started, wait for what has, and end every worker process."""
        with self._lock:
            pools = [*self._retired, *([self._pool] if self._pool else [])]
            self._pool, self._retired = None, []
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)


def done(work: Callable[[], EncodedChain]) -> Future[EncodedChain]:
    """A future already settled with ``work()``'s result or exception."""
    future: Future[EncodedChain] = Future()
    try:
        future.set_result(work())
    except Exception as exc:
        future.set_exception(exc)
    return future
