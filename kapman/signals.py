"""SIGTERM and SIGHUP end a run the way Ctrl-C does.

What a scheduler sends to stop a job (systemd, cron's shell going away, ``kill``) becomes a
``Terminated`` exception, a ``KeyboardInterrupt``, in the main thread: every ``except
KeyboardInterrupt`` path (the run ledger's ``interrupted`` row with what was committed, the options
pipeline's shutdown of its threads and worker processes) runs for it too, and the command exits
128 + the signal's number, as a shell reports a process killed by it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: The signals that stop a run politely (SIGINT keeps Python's own KeyboardInterrupt).
HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


CTRL_C = "Ctrl-C"


def cause(exc: KeyboardInterrupt) -> str:
    """What stopped the run: ``SIGTERM``, ``SIGHUP`` or ``Ctrl-C``."""
    return exc.name if isinstance(exc, Terminated) else CTRL_C


def describe(exc: KeyboardInterrupt) -> str:
    """``cause`` as the ledger and the log say it: "interrupted by SIGTERM", "interrupted (Ctrl-C)"."""
    what = cause(exc)
    return f"interrupted ({what})" if what == CTRL_C else f"interrupted by {what}"


def exit_code(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 128 + the signal's number for the others."""
    return exc.exit_code if isinstance(exc, Terminated) else 128 + signal.SIGINT


def _raise(signum: int, frame: FrameType | None) -> None:
    # Restore the default first: a second signal while the run records its outcome ends it at once.
    for handled in HANDLED:
        signal.signal(handled, signal.SIG_DFL)
    raise Terminated(signum)


@contextmanager
def as_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``Terminated`` in the main thread; the previous
    handlers are back afterwards.  Elsewhere than the main thread it does nothing (Python delivers
    signals to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in HANDLED}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block, Ctrl-C, SIGTERM and SIGHUP wait and are raised when it ends: a unit of work
    committed and counted as one.  A signal arrives mostly while a run waits for a commit, and raised
    there it stopped the run after the commit and before the count (the ledger said one file fewer
    than the table held).  Elsewhere than the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _: held.append(signum)) for s in (signal.SIGINT, *HANDLED)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])   # to the handler it had before the block
