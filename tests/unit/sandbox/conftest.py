from __future__ import annotations

import pytest

from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer


@pytest.fixture(scope="session")
def market() -> Market:
    return Market(seed=42, n_tickers=400)


@pytest.fixture()
def server(market: Market):
    with SandboxRestServer(market, api_key="test-key") as srv:
        yield srv
