"""Fetching one chain: its pages as raw bodies, handed to processing as soon as they are all in.

One of ``concurrency`` fetch threads runs ``fetch`` per symbol.  The threads share one
PolygonClient (one connection pool, one rate limiter, one set of counters, one run deadline) and
read only each page's ``next_url`` (``PolygonClient.option_chain_bodies``); decoding is left to
``workers.Processor``.  Without worker processes each page is processed here as it arrives.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from kapman.config import NumberRange
from kapman.errors import AuthError, DeadlineError
from kapman.ingest.options.process import ChainProcessor, EncodedChain
from kapman.ingest.options.workers import Processor, done
from kapman.providers.polygon import PolygonClient, RawPage

#: Fetch threads at most (``--concurrency``): each holds a connection of the pool, and the rate
#: limit is shared anyway.
CONCURRENCY_RANGE = NumberRange(1, 64, integer=True)


class Stopped(Exception):
    """The run was stopped (401, lost database, deadline) before this symbol finished fetching."""


@dataclass
class Fetched:
    ticker_id: UUID
    pages: int
    bodies: list[RawPage]  # kept until processed when processing is elsewhere
    seconds: float
    work: Future[EncodedChain]


def fetch(
    client: PolygonClient,
    symbol: str,
    ticker_id: UUID,
    snapshot: datetime,
    stop: threading.Event,
    processor: Processor,
) -> Fetched:
    """Fetch ``symbol``'s chain and submit it for processing; raises ``Stopped`` once ``stop`` is set.

    A 401 or the run's deadline sets ``stop`` at once, so that no thread starts another symbol.
    """
    started = time.perf_counter()
    pages, bodies = 0, []
    # Without worker processes each page is processed as it arrives, as a thread that waits for
    # the next page would, instead of all at once at the end (which holds the GIL for longer).
    here = None if processor.pooled else ChainProcessor(snapshot, ticker_id, symbol)
    if stop.is_set():
        raise Stopped
    try:
        for page in client.option_chain_bodies(symbol):
            pages += 1
            if here is None:
                bodies.append(page)
            else:
                here.add(page)
            if stop.is_set():
                raise Stopped
    except AuthError:
        stop.set()
        raise
    except DeadlineError as exc:
        if exc.run:
            stop.set()
        raise
    if here is not None:
        return Fetched(ticker_id, pages, [], time.perf_counter() - started - here.seconds, done(here.finish))
    seconds = time.perf_counter() - started
    return Fetched(ticker_id, pages, bodies, seconds, processor.submit(bodies, snapshot, ticker_id, symbol))
