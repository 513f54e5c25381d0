"""Option-chain pages -> one binary COPY payload: the CPU-bound half of options ingestion.

Decoding a page of 250 snapshots, normalising it and encoding the kept rows is pure Python work
under the GIL.  ``kapman.ingest.options`` runs ``process_pages`` in worker processes, so that the
fetch threads and the writer do not queue for that lock; with ``workers=0`` (or when no worker
process can start) it runs in the fetch threads, with the same result.  Nothing here touches the
network or the database, and nothing secret is passed in: the pages are response bodies only.
"""

from __future__ import annotations

import gc
import signal
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from kapman.db import bulk
from kapman.ingest.options_normalise import TYPES, ChainNormaliser, NormalisedChain
from kapman.providers.http import PolygonHTTP, RawPage

#: The cyclic collector's young-generation threshold while chains are decoded (CPython's default:
#: 700).  A page decodes into ~2,500 dicts that live for a few milliseconds.  At the default the
#: collector runs several times per page, promotes the pages in flight to the older generations,
#: and the full collections that follow traverse every row kept so far: a third of the decoding
#: CPU.  At 20,000 the pages die (by reference counting, as before) between collections.  Only
#: reference cycles, which decoding hardly creates, wait for a later collection.
GC_YOUNG_THRESHOLD = 20_000


@dataclass
class EncodedChain:
    """One symbol's normalised rows as a complete binary COPY stream (``options_normalise.COLUMNS``)."""

    snapshot_time: datetime
    ticker_id: UUID
    payload: bytes
    rows: int
    contracts: int = 0
    dropped: Counter = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    seconds: float = 0.0  # decoding, normalising and encoding


def encode_chain(chain: NormalisedChain, snapshot_time: datetime, ticker_id: UUID) -> EncodedChain:
    return EncodedChain(
        snapshot_time,
        ticker_id,
        bulk.encode_binary_rows(TYPES, chain.rows),
        len(chain.rows),
        chain.contracts,
        chain.dropped,
        chain.samples,
    )


class ChainProcessor:
    """``process_pages`` a page at a time: ``add`` each page in order, then ``finish``.

    Errors are ``PolygonHTTP.get_json``'s for a body that is not a JSON object; a page whose
    decoded ``next_url`` differs from the one its envelope gave (and the fetch followed) fails too.
    """

    def __init__(self, snapshot_time: datetime, ticker_id: UUID, symbol: str) -> None:
        self.snapshot_time, self.ticker_id, self.symbol = snapshot_time, ticker_id, symbol
        self.normaliser = ChainNormaliser(snapshot_time, ticker_id)
        self.seconds = 0.0

    def add(self, page: RawPage) -> None:
        started = time.perf_counter()
        data = PolygonHTTP._decode(page.body, page.shown, self.symbol)
        PolygonHTTP.check_envelope(data, page, self.symbol)
        self.normaliser.add(list(data.get("results") or []))
        del data  # the page's dicts go now, while they are warm
        self.seconds += time.perf_counter() - started

    def finish(self) -> EncodedChain:
        started = time.perf_counter()
        encoded = encode_chain(self.normaliser.finish(), self.snapshot_time, self.ticker_id)
        encoded.seconds = self.seconds + time.perf_counter() - started
        return encoded


def process_pages(pages: Sequence[RawPage], snapshot_time: datetime, ticker_id: UUID, symbol: str) -> EncodedChain:
    """Decode a chain's pages in order, normalise them and encode the rows kept."""
    processor = ChainProcessor(snapshot_time, ticker_id, symbol)
    for page in pages:
        processor.add(page)
    return processor.finish()


def init_worker() -> None:
    """A worker process's set-up: Ctrl-C is the parent's to handle (it shuts the pool down)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    young, *older = gc.get_threshold()
    if 0 < young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, *older)


def ready() -> bool:
    """A no-op task: submitting one per worker starts the processes before the first chain is in."""
    return True
