"""Time to expiry from each contract's settlement: AM-settled index monthlies stop at the open."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from kapman.metrics.dealer import compute_dealer_metrics
from kapman.metrics.dealer_chain import ChainArrays
from kapman.metrics.greeks import bs_gamma

AS_OF = date(2025, 12, 15)
SNAPSHOT = datetime(2025, 12, 15, 21, 0, tzinfo=UTC)            # Monday 16:00 New York
EXPIRY = np.datetime64("2025-12-19")                            # Friday
PM_YEARS = 4 * 24 / (365 * 24)                                  # to Friday 16:00
AM_YEARS = (4 * 24 - 6.5) / (365 * 24)                          # to Friday 09:30


def _chain(am: bool | None) -> ChainArrays:
    one = np.ones(1)
    return ChainArrays(expiration=np.array([EXPIRY]), strike=np.array([6000.0]), is_call=np.array([True]),
                       is_put=np.array([False]), open_interest=1000 * one, volume=one,
                       implied_volatility=0.2 * one, delta=np.full(1, np.nan), gamma=np.full(1, np.nan),
                       multiplier=100 * one, settles_at_open=None if am is None else np.array([am]))


@pytest.mark.parametrize(("am", "years"), [(None, PM_YEARS), (False, PM_YEARS), (True, AM_YEARS)],
                         ids=["unmarked", "pm", "am"])
def test_gamma_from_iv_uses_the_contract_settlement(am: bool | None, years: float) -> None:
    out = compute_dealer_metrics(_chain(am), spot=6050.0, spot_source="x", as_of=AS_OF, snapshot_time=SNAPSHOT)
    gamma = float(np.asarray(bs_gamma(6050.0, 6000.0, years, 0.2, 0.04)).ravel()[0])
    assert out["gex_net"] == pytest.approx(gamma * 1000 * 100 * 6050.0**2 * 0.01, abs=0.01)


def test_am_and_pm_twins_differ() -> None:
    pm = compute_dealer_metrics(_chain(False), spot=6050.0, spot_source="x", as_of=AS_OF, snapshot_time=SNAPSHOT)
    am = compute_dealer_metrics(_chain(True), spot=6050.0, spot_source="x", as_of=AS_OF,
                                snapshot_time=SNAPSHOT)
    assert am["gex_net"] > pm["gex_net"] > 0     # less time left: more gamma near the money
