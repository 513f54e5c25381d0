"""A token bucket shared by every worker thread of a run: one request budget for the API."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Allows ``rate`` requests per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = float(burst if burst is not None else max(1, int(rate)))
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, until: float | None = None) -> bool:
        """Block until a request may go; False at once when that would be after ``until``
        (a ``time.monotonic()`` instant)."""
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return True
                delay = (1 - self._tokens) / self.rate
            if until is not None and now + delay > until:
                return False
            time.sleep(delay)
