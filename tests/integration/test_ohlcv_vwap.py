"""ohlcv.vwap: grouped daily's ``vw`` is stored; the day files have no VWAP, so it stays NULL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest

from kapman.ingest.ohlcv import OhlcvParams, ingest
from kapman.providers.flatfiles import FlatFileSource, MirrorSource
from kapman.providers.grouped import GroupedDailySource
from kapman.providers.http import PolygonHTTP
from kapman.providers.polygon import PolygonClient
from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer
from kapman.step import StepResult

pytestmark = pytest.mark.integration
DAYS = (date(2025, 12, 17), date(2025, 12, 19))


def load(db: psycopg.Connection, source: FlatFileSource) -> StepResult:
    result = StepResult("ohlcv", unit=source.unit)
    ingest(db, source, OhlcvParams(mode="backfill", start=DAYS[0], end=DAYS[1]), result)
    return result


@pytest.fixture
def grouped(rest: SandboxRestServer) -> Iterator[GroupedDailySource]:
    http = PolygonHTTP(rest.base_url, rest.api_key, rate_limit=1000, max_retries=2, sleep=lambda s: None)
    source = GroupedDailySource(PolygonClient(http))
    yield source
    source.close()


def test_vwap_from_grouped_daily_and_null_from_day_files(reference_db: psycopg.Connection, market: Market,
                                                         mirror_dir: Path, grouped: GroupedDailySource) -> None:
    assert load(reference_db, grouped).exit_code == 0
    stored = dict(((s, d), v) for s, d, v in reference_db.execute(
        "SELECT t.symbol, o.date, o.vwap FROM ohlcv o JOIN tickers t ON t.id = o.ticker_id").fetchall())
    want = {(r["T"], d): r["vw"] for d in market.trading_days if DAYS[0] <= d <= DAYS[1]
            for r in market.grouped_daily(d, adjusted=False) if (r["T"], d) in stored}
    assert len(want) == len(stored) > 300 and stored == want
    reference_db.execute("TRUNCATE ohlcv, ingest_files")
    assert load(reference_db, MirrorSource(mirror_dir, "us_stocks_sip/day_aggs_v1")).exit_code == 0
    counts = reference_db.execute("SELECT count(*), count(vwap) FROM ohlcv").fetchone()
    assert counts[0] == len(stored) and counts[1] == 0
