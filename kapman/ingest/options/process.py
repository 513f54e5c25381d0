"""Option-chain pages -> one binary COPY payload: the CPU-bound stage of options ingestion.

Decoding a page of 250 snapshots, normalising it and encoding the kept rows is pure Python work
under the GIL.  The pipeline runs ``process_pages`` in worker processes (``workers``), so that the
fetch threads and the writer do not queue for that lock; with ``workers=0`` (or when no worker
process can start) it runs in the fetch threads, with the same result.  Nothing here touches the
network or the database, and nothing secret is passed in: the pages are response bodies only.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from kapman.db import bulk
from kapman.ingest.options.normalise import TYPES, ChainNormaliser, NormalisedChain
from kapman.providers.polygon import RawPage, page_results


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
    unpriced: int = 0
    unquoted: int = 0
    not_numbers: dict[str, int] = field(default_factory=dict)  # NormalisedChain's
    not_number_examples: dict[str, str] = field(default_factory=dict)
    unreadable: list[tuple] = field(default_factory=list)  # NormalisedChain's, as (expiration, strike, type)


def encode_chain(chain: NormalisedChain, snapshot_time: datetime, ticker_id: UUID) -> EncodedChain:
    return EncodedChain(
        snapshot_time,
        ticker_id,
        bulk.encode_binary_rows(TYPES, chain.rows),
        len(chain.rows),
        chain.contracts,
        chain.dropped,
        chain.samples,
        unpriced=chain.unpriced,
        unquoted=chain.unquoted,
        not_numbers=dict(chain.not_numbers),
        not_number_examples=chain.not_number_examples,
        unreadable=list(chain.unreadable),
    )


class ChainProcessor:
    """``process_pages`` a page at a time: ``add`` each page in order, then ``finish``.

    Errors are ``page_results``'s: a body that is not a JSON object, or a page whose decoded
    ``next_url`` differs from the one its envelope gave (and the fetch followed).
    """

    def __init__(self, snapshot_time: datetime, ticker_id: UUID, symbol: str) -> None:
        self.snapshot_time, self.ticker_id, self.symbol = snapshot_time, ticker_id, symbol
        self.normaliser = ChainNormaliser(snapshot_time, ticker_id)
        self.seconds = 0.0

    def add(self, page: RawPage) -> None:
        started = time.perf_counter()
        results = page_results(page, self.symbol)
        self.normaliser.add(results)
        del results  # the page's dicts go now, while they are warm
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
