"""Injectable REST failures: what to break, for which requests, how many times.

Faults are consumed in the order they were added; each fires on matching requests until its
count runs out, after letting the first ``after`` of them through (``after=1``: a list's second
page, not its first).  Latency and entitlement (403) rules stay until ``clear()``.

Hostile answers (a proxy that corrupts responses): ``body`` answers 200 with any text (not JSON,
an HTML page, a JSON array); ``reshape`` sets top-level fields of a page (``{"results": {}}``,
``{"next_url": 7}``, ``{"next_url": "@other-host/v3/..."}``); ``patch`` sets one field of one
result of a page (``{"field": "open_interest", "value": 1e300}``, dotted for nested fields:
``"day.volume"``, ``"delisted_utc"``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

RATE_LIMIT_BODY = (
    "You've exceeded the maximum requests per minute, please wait or upgrade your "
    "subscription to continue. https://polygon.io/pricing"
)
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class Fault:
    kind: str  # "rate_limit", "server_error", "slow", "body", "reshape" or "patch"
    times: int
    path_prefix: str | None = None
    symbol: str | None = None
    retry_after: float | None = None
    status: int = 500
    html: bool = False
    empty_body: bool = False
    seconds: float = 0.0
    body: str = ""  # "body": the text answered
    fields: dict[str, Any] = field(default_factory=dict)  # "reshape": top-level fields set
    target: str = ""  # "patch": the (dotted) field of result ``index`` set to ``value``
    value: Any = None
    index: int = 0
    after: int = 0  # matching requests let through before the fault fires

    def patched(self, results: list[Any]) -> list[Any]:
        """``results`` with this patch applied to a copy of result ``index`` (when there is one)."""
        if not 0 <= self.index < len(results) or not isinstance(results[self.index], dict):
            return results
        out = list(results)
        target = out[self.index] = dict(out[self.index])
        *path, last = self.target.split(".")
        for name in path:
            inner = target.get(name)
            target[name] = dict(inner) if isinstance(inner, dict) else {}
            target = target[name]
        target[last] = self.value
        return out

    def matches(self, path: str, symbol: str | None) -> bool:
        if self.path_prefix and not path.startswith(self.path_prefix):
            return False
        return self.symbol is None or self.symbol == symbol


#: Kinds that are rules until cleared, not faults counted per request (``after`` has no meaning).
_STANDING = frozenset({"latency", "forbid", "pagination_loop", "clear"})


@dataclass
class Faults:
    """Thread-safe fault plan shared by the server's request threads."""

    pending: list[Fault] = field(default_factory=list)
    latency_seconds: float = 0.0
    forbidden: set[str] = field(default_factory=set)
    loop_prefixes: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _add(self, fault: Fault) -> Fault:
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self.pending.append(fault)
        return fault

    def rate_limit(
        self,
        times: int = 1,
        retry_after: float | None = None,
        path_prefix: str | None = None,
        symbol: str | None = None,
        empty_body: bool = False,
    ) -> Fault:
        """429; with a ``Retry-After`` header only when ``retry_after`` is given."""
        return self._add(
            Fault(
                "rate_limit",
                times,
                path_prefix,
                symbol,
                retry_after=retry_after,
                status=429,
                empty_body=empty_body,
            )
        )

    def server_error(
        self,
        times: int = 1,
        html: bool = False,
        path_prefix: str | None = None,
        symbol: str | None = None,
        status: int | None = None,
    ) -> Fault:
        """5xx: a JSON error (500 by default) or an nginx HTML page (502 by default)."""
        return self._add(
            Fault(
                "server_error", times, path_prefix, symbol, html=html, status=status or (502 if html else 500)
            )
        )

    def slow(
        self, seconds: float, times: int = 1, path_prefix: str | None = None, symbol: str | None = None
    ) -> Fault:
        """Sleep before answering (normally) the next ``times`` matching requests."""
        return self._add(Fault("slow", times, path_prefix, symbol, seconds=seconds))

    def body(self, body: str, times: int = 1, path_prefix: str | None = None, symbol: str | None = None) -> Fault:
        """200 with ``body`` as it is (e.g. ``<html>`` or ``[1, 2]``) instead of the page."""
        return self._add(Fault("body", times, path_prefix, symbol, status=200, body=body))

    def reshape(self, fields: dict[str, Any], times: int = 1, path_prefix: str | None = None,
                symbol: str | None = None) -> Fault:
        """The page with its top-level ``fields`` set (``{"next_url": "@host/x"}``, ``{"results": {}}``)."""
        if not isinstance(fields, dict):
            raise ValueError("fields must be a JSON object")
        return self._add(Fault("reshape", times, path_prefix, symbol, fields=dict(fields)))

    def patch(self, field: str, value: Any, times: int = 1, index: int = 0, path_prefix: str | None = None,
              symbol: str | None = None) -> Fault:
        """The page with ``field`` (dotted: ``day.volume``) of its result ``index`` set to ``value``."""
        if not isinstance(field, str) or not field:
            raise ValueError("field must name a field, e.g. open_interest or day.volume")
        return self._add(Fault("patch", times, path_prefix, symbol, target=field, value=value, index=int(index)))

    def latency(self, seconds: float) -> None:
        """A fixed delay on every API request (e.g. 0.05 for 50 ms per page)."""
        with self._lock:
            self.latency_seconds = max(float(seconds), 0.0)

    def forbid(self, symbols: list[str] | set[str] | str) -> None:
        """403 NOT_AUTHORIZED for requests about these symbols."""
        with self._lock:
            self.forbidden |= {symbols} if isinstance(symbols, str) else set(symbols)

    def pagination_loop(self, path_prefix: str = "/") -> None:
        """Paginated responses under the prefix point ``next_url`` back at an earlier page, forever."""
        with self._lock:
            self.loop_prefixes.append(path_prefix)

    def clear(self) -> None:
        with self._lock:
            self.pending.clear()
            self.forbidden.clear()
            self.loop_prefixes.clear()
            self.latency_seconds = 0.0

    def take(self, kind: str, path: str, symbol: str | None) -> Fault | None:
        """Consume one use of the first matching fault of a kind."""
        with self._lock:
            for fault in self.pending:
                if fault.kind == kind and fault.matches(path, symbol):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.times -= 1
                    if fault.times == 0:
                        self.pending.remove(fault)
                    return fault
        return None

    def is_forbidden(self, symbol: str | None) -> bool:
        with self._lock:
            return symbol is not None and symbol in self.forbidden

    def loops(self, path: str) -> bool:
        with self._lock:
            return any(path.startswith(p) for p in self.loop_prefixes)

    def describe(self) -> dict:
        with self._lock:
            return {
                "pending": [asdict(f) for f in self.pending],
                "latency": self.latency_seconds,
                "forbidden": sorted(self.forbidden),
                "pagination_loop": list(self.loop_prefixes),
            }

    def apply(self, spec: dict) -> None:
        """Add a fault from a control-endpoint JSON body: ``{"kind": "rate_limit", "times": 2, ...}``."""
        spec = dict(spec)
        kind = spec.pop("kind", None)
        after = spec.pop("after", 0)
        if type(after) is not int or after < 0 or (after and kind in _STANDING):
            raise ValueError(f"after is a count (0 or more) of matching requests a fault lets through; "
                             f"not {after!r} for {kind!r}")
        actions: dict[str, Callable[..., object]] = {
            "rate_limit": self.rate_limit,
            "server_error": self.server_error,
            "slow": self.slow,
            "latency": self.latency,
            "forbid": self.forbid,
            "pagination_loop": self.pagination_loop,
            "body": self.body,
            "reshape": self.reshape,
            "patch": self.patch,
            "clear": self.clear,
        }
        if kind not in actions:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(actions)}")
        fault = actions[kind](**spec)
        if isinstance(fault, Fault):
            fault.after = after
