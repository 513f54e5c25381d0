"""A PolygonHTTP that serves canned pages, and a small option chain to serve."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kapman.providers.http import PolygonHTTP


class Response:
    """What PolygonHTTP reads of a urllib3 response: status, headers and a body read in chunks."""

    def __init__(self, data: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.status, self.headers, self.data = status, headers or {}, data
        self._body = io.BytesIO(data)

    def read1(self, amt: int = -1) -> bytes:
        return self._body.read(amt)

    def close(self) -> None:
        self._body.close()

    def release_conn(self) -> None:
        pass


class Canned(PolygonHTTP):
    """Serves bodies by cursor ("first" without one); every request's URL is recorded."""

    def __init__(self, bodies: dict[str, bytes], **kw: Any) -> None:
        self.sleeps: list[float] = []
        super().__init__("http://api.test", "secret-key-42", sleep=self.sleeps.append, **kw)
        self.bodies, self.asked = bodies, []
        self._pool.request = self._answer  # type: ignore[method-assign]

    def _answer(self, method: str, url: str, **kw: Any) -> Response:
        self.asked.append(url)
        cursor = parse_qs(urlsplit(url).query).get("cursor", ["first"])[0]
        return Response(self.bodies[cursor])


def contract(i: int) -> dict:
    return {"details": {"contract_type": "call" if i % 2 else "put",
                        "ticker": f"O:X260116{'C' if i % 2 else 'P'}{(10 + i) * 1000:08d}", "strike_price": 10 + i,
                        "expiration_date": "2026-01-16", "shares_per_contract": 100},
            "greeks": {"delta": 0.5} if i % 3 else None, "open_interest": i, "note": "a ] b [ \" ]"}


def chain(pages: int, *, results_last: bool = False, spaced: bool = False) -> dict[str, bytes]:
    bodies = {}
    for p in range(pages):
        cursor = "first" if p == 0 else f"c{p}"
        top: dict[str, Any] = {"status": "OK", "request_id": f"r]{p}"}
        if p + 1 < pages:
            top["next_url"] = f"https://api.other/v3/x?cursor=c{p + 1}&odd=]"
        results = [contract(2 * p), contract(2 * p + 1)]
        body = {**top, "results": results} if results_last else {"results": results, **top}
        bodies[cursor] = json.dumps(body, indent=2 if spaced else None).encode()
    return bodies
