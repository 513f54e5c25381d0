"""A connection whose close() leaves the server's session in place, as a loaded server does for a
moment after close() returns: what a lock held until the session ends looks like to the next step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg


class SlowToEnd:
    def __init__(self, real: psycopg.Connection) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def __enter__(self) -> SlowToEnd:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def close(self) -> None:
        pass


def slow_to_end(opened: list[psycopg.Connection]) -> Callable[..., SlowToEnd]:
    """A stand-in for ``kapman.db.connect.connect`` whose sessions outlive close(); the test closes
    ``opened`` itself at its end."""
    def connect(url: str, **kwargs: Any) -> SlowToEnd:
        opened.append(psycopg.connect(url, **kwargs))
        return SlowToEnd(opened[-1])
    return connect
