"""Integration fixtures: the offline sandbox (REST, S3, mirror) and hydrated databases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from kapman.ingest.tickers import ingest_tickers
from kapman.ingest.watchlists import ingest_watchlists
from kapman.providers.http import PolygonHTTP
from kapman.providers.polygon import PolygonClient
from kapman.sandbox.market import Market
from kapman.sandbox.mirror import write_mirror
from kapman.sandbox.profiles import REALISTIC
from kapman.sandbox.rest import SandboxRestServer
from tests.support import database

#: The sandbox's market clock: Friday 2025-12-19 close.
MARKET_NOW = "2025-12-19"
#: The evening of the hydrated data's last snapshot (tests.support.hydrate.SNAPSHOTS).
HYDRATED_NOW = "2025-12-19T22:00:00Z"
WATCHLISTS = Path(__file__).resolve().parents[2] / "data" / "watchlists"


@pytest.fixture(scope="session")
def market() -> Market:
    # 250 tickers cover every real name of the MVP watchlist; 120 days keep files few.
    return Market(seed=11, n_tickers=250, days=120)


#: The API key both sandbox REST servers accept.
API_KEY = "it-secret-key-123"


@pytest.fixture(scope="session")
def rest_server(market: Market) -> Iterator[SandboxRestServer]:
    with SandboxRestServer(market, api_key=API_KEY) as server:
        yield server


@pytest.fixture
def rest(rest_server: SandboxRestServer) -> Iterator[SandboxRestServer]:
    rest_server.faults.clear()
    rest_server.set_clock(rest_server.market.now)
    yield rest_server
    rest_server.faults.clear()


@pytest.fixture(scope="session")
def realistic_market() -> Market:
    """The same market on the realistic profile (class-suffix tickers, ETV/ETS, sparse ids)."""
    return Market(seed=11, n_tickers=250, days=120, profile=REALISTIC)


@pytest.fixture(scope="session")
def realistic_polygon(realistic_market: Market) -> Iterator[PolygonClient]:
    """A client of a REST server of its own on the realistic market."""
    with SandboxRestServer(realistic_market, api_key=API_KEY) as server:
        client = PolygonClient(PolygonHTTP(server.base_url, API_KEY, rate_limit=1000))
        yield client
        client.close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def polygon(rest: SandboxRestServer, sleeps: list[float]) -> Iterator[PolygonClient]:
    """A client whose backoff sleeps are recorded instead of slept."""
    http = PolygonHTTP(rest.base_url, rest.api_key, rate_limit=1000, connect_timeout=2, read_timeout=1.5,
                       max_retries=4, sleep=sleeps.append)
    client = PolygonClient(http)
    yield client
    client.close()


@pytest.fixture(scope="session")
def mirror_dir(market: Market, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("mirror")
    write_mirror(market, directory)
    return directory


@pytest.fixture
def market_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", MARKET_NOW)


@pytest.fixture
def hydrated_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """KapMan's clock frozen just after the hydrated data (tests.support.hydrate), before the test's
    database is made.  On a community server's real clock the policies compress December 2025's chunks
    in the background while a test rewrites them (a TRUNCATE racing the compression job deadlocks); a
    database made on a frozen clock has them paused, as the README says."""
    monkeypatch.setenv("KAPMAN_NOW", HYDRATED_NOW)


@pytest.fixture
def db(fresh_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        yield conn


@pytest.fixture
def reference_db(db: psycopg.Connection, polygon: PolygonClient) -> psycopg.Connection:
    """A rebuilt database with tickers and the MVP watchlist loaded."""
    ingest_tickers(db, polygon, force=True)
    ingest_watchlists(db, WATCHLISTS)
    return db


@pytest.fixture(scope="module")
def options_url(new_rebuilt_db: database.NewRebuiltDb, rest_server: SandboxRestServer) -> Iterator[str]:
    """One database with tickers and the MVP watchlist per module of options tests; tests clear the options."""
    with ExitStack() as stack:
        # the copy is made on the frozen clock too, so a community server's policies stay paused while
        # the tests truncate and rewrite December 2025's snapshots
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("KAPMAN_NOW", MARKET_NOW)
            url = stack.enter_context(new_rebuilt_db("opt_"))
            client = PolygonClient(PolygonHTTP(rest_server.base_url, rest_server.api_key, rate_limit=1000))
            with psycopg.connect(url, autocommit=True) as conn:
                ingest_tickers(conn, client, force=True)
                ingest_watchlists(conn, WATCHLISTS)
            client.close()
        yield url


@pytest.fixture
def odb(options_url: str, rest: SandboxRestServer) -> Iterator[psycopg.Connection]:
    with psycopg.connect(options_url, autocommit=True) as conn:
        conn.execute("TRUNCATE options_chains, ingest_runs")
        conn.execute("DELETE FROM watchlists WHERE watchlist_id = 'extra'")
        yield conn
