"""Progress reporting, injected into jobs: a bar on a terminal, periodic lines otherwise.

Jobs call ``start``/``advance``/``close`` and never print.  ``--quiet`` gives ``NullProgress``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    def start(self, total: int | None, desc: str, unit: str = "it") -> None: ...

    def advance(self, n: int = 1, **info: Any) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    def start(self, total: int | None, desc: str, unit: str = "it") -> None:
        pass

    def advance(self, n: int = 1, **info: Any) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress:
    """One line every ``interval`` seconds (cron, CI, pipes)."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 5.0) -> None:
        self.stream, self.interval = stream, interval
        self.total: int | None = None
        self.done, self.desc, self.unit = 0, "", "it"
        self.info: dict[str, Any] = {}
        self._last = self._t0 = time.monotonic()

    def start(self, total: int | None, desc: str, unit: str = "it") -> None:
        """A new task: its counters start empty (a nightly's steps share one progress)."""
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        self.info = {}
        self._last = self._t0 = time.monotonic()

    def advance(self, n: int = 1, **info: Any) -> None:
        self.done += n
        self.info.update(info)
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._emit(now)

    def _emit(self, now: float) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        elapsed = now - self._t0
        eta = ""
        if self.total and 0 < self.done < self.total:
            eta = f", ETA {elapsed / self.done * (self.total - self.done):.0f}s"
        extra = " ".join(f"{k}={v}" for k, v in self.info.items())
        print(f"{self.desc}: {self.done}{of} {self.unit} ({elapsed:.0f}s{eta}) {extra}".rstrip(),
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.done:
            self._emit(time.monotonic())


class BarProgress:
    """A tqdm bar on stderr."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, total: int | None, desc: str, unit: str = "it") -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)

    def advance(self, n: int = 1, **info: Any) -> None:
        if self._bar is not None:
            self._bar.update(n)
            if info:
                self._bar.set_postfix(info, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def for_terminal(quiet: bool) -> Progress:
    if quiet:
        return NullProgress()
    return BarProgress() if sys.stderr.isatty() else LineProgress()
