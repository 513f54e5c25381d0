"""Dealer metrics on small hand-worked chains: every expected number is derived in the test."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kapman.errors import ConfigError
from kapman.metrics.dealer import (
    FULL,
    INVALID,
    LIMITED,
    DealerParams,
    compute_dealer_metrics,
)
from kapman.metrics.dealer_chain import FILTER_REASONS, ChainArrays
from kapman.metrics.greeks import bs_gamma, year_fraction

AS_OF = date(2025, 6, 13)  # a Friday
SNAPSHOT = datetime(2025, 6, 13, 19, 45, tzinfo=UTC)  # 15:45 New York
PARAMS = DealerParams()

_DEFAULTS: dict[str, Any] = {
    "contract_symbol": "O:TEST",
    "dte": 10,
    "strike": 100.0,
    "option_type": "C",
    "open_interest": 10,
    "volume": 0,
    "implied_volatility": None,
    "delta": None,
    "gamma": None,
    "theta": None,
    "vega": None,
    "shares_per_contract": 100,
}


def chain(*rows: dict[str, Any]) -> pd.DataFrame:
    """A chain DataFrame as the job builds it; each row overrides the defaults, ``dte`` sets expiry."""
    records = []
    for row in rows:
        rec = {**_DEFAULTS, **row}
        rec["expiration_date"] = AS_OF + timedelta(days=rec.pop("dte"))
        records.append(rec)
    return pd.DataFrame.from_records(records)


def metrics(frame: pd.DataFrame | ChainArrays, spot: float | None = 100.0, **params: Any) -> dict[str, Any]:
    return compute_dealer_metrics(
        frame,
        spot=spot,
        spot_source="snapshot",
        as_of=AS_OF,
        snapshot_time=SNAPSHOT,
        params=DealerParams(**params),
    )


def assert_plain_json(value: Any) -> None:
    """Only JSON-native Python types, no NaN: what json.dumps(allow_nan=False) needs."""
    json.dumps(value, allow_nan=False)
    if isinstance(value, dict):
        for k, v in value.items():
            assert type(k) is str
            assert_plain_json(v)
    elif isinstance(value, list):
        for v in value:
            assert_plain_json(v)
    else:
        assert value is None or type(value) in (str, int, float, bool), type(value)


def many(n: int, *, dtes: tuple[int, ...] = (10, 40), kinds: tuple[str, ...] = ("C", "P")) -> pd.DataFrame:
    """n eligible contracts cycling through the given expirations and sides."""
    return chain(
        *(
            {
                "strike": 80.0 + i,
                "dte": dtes[i % len(dtes)],
                "option_type": kinds[i % len(kinds)],
                "gamma": 0.01,
            }
            for i in range(n)
        )
    )


# --- GEX, DEX and ratios ------------------------------------------------------------------------

HAND = chain(
    # GEX = +1 * 0.05 * 10 * 100 * 100^2 * 0.01 = +5,000 ; DEX = +1 * 0.5 * 10 * 100 * 100 = +50,000
    {"strike": 100.0, "option_type": "C", "open_interest": 10, "gamma": 0.05, "delta": 0.5, "volume": 40},
    # GEX = -1 * 0.04 * 20 * 100 * 100^2 * 0.01 = -8,000 ; DEX = -1 * -0.3 * 20 * 100 * 100 = +60,000
    {"strike": 95.0, "option_type": "P", "open_interest": 20, "gamma": 0.04, "delta": -0.3, "volume": 30},
    # 40 days out (until issue 27 an adjusted contract with multiplier 10, now kept out: see below):
    # GEX = +1 * 0.002 * 5 * 100 * 100^2 * 0.01 = +100 ; DEX = +1 * 0.02 * 5 * 100 * 100 = +1,000
    {
        "strike": 110.0,
        "option_type": "C",
        "open_interest": 5,
        "gamma": 0.002,
        "delta": 0.02,
        "dte": 40,
        "volume": 20,
    },
)


def test_gex_sign_and_magnitude_by_hand() -> None:
    out = metrics(HAND)
    assert out["gex_net"] == 5_000 - 8_000 + 100
    assert out["gex_gross"] == 5_000 + 8_000 + 100
    assert out["gex_ratio"] == round(-2_900 / 13_100, 4)
    assert out["position"] == "short_gamma"  # |-0.2214| >= 0.1
    assert out["dex_net"] == 50_000 + 60_000 + 1_000
    assert out["gex_by_dte"] == {
        "0-7": {"net": 0.0, "gross": 0.0, "contracts": 0},
        "8-30": {"net": -3_000.0, "gross": 13_000.0, "contracts": 2},
        "31-90": {"net": 100.0, "gross": 100.0, "contracts": 1},
    }
    assert out["strike_profile"] == {"strikes": [95.0, 100.0, 110.0], "gex": [-8_000.0, 5_000.0, 100.0]}
    # Put/call ratios: OI 20 / (10 + 5); volume 30 / (40 + 20).
    assert out["put_call_oi_ratio"] == round(20 / 15, 4)
    assert out["put_call_volume_ratio"] == 0.5
    assert out["call_wall"] == 100.0 and out["put_wall"] == 95.0
    assert out["status"] == LIMITED and out["status_reason"].startswith("few_eligible_contracts: 3 < 25")
    assert out["counts"]["eligible"] == 3 and out["counts"]["calls"] == 2 and out["counts"]["puts"] == 1
    assert_plain_json(out)


def test_adjusted_contracts_change_no_metric_and_are_counted() -> None:
    """GE-like: after a reverse split 12-share contracts keep strike 13 while spot is 100; with the
    largest open interest they would be both walls and max pain."""
    adjusted = [{"strike": 13.0, "option_type": kind, "open_interest": oi, "gamma": 0.0004, "delta": 0.9,
                 "shares_per_contract": 12, "volume": 5} for kind, oi in (("C", 50_000), ("P", 30_000))]
    plain, out = metrics(HAND), metrics(pd.concat([HAND, chain(*adjusted)], ignore_index=True))
    assert out["counts"]["excluded"]["adjusted_deliverable"] == 2
    assert out["counts"]["total"] == plain["counts"]["total"] + 2
    keep = ("gex_net", "gex_gross", "dex_net", "call_walls", "put_walls", "max_pain", "strike_profile",
            "put_call_oi_ratio", "put_call_volume_ratio", "gamma_flip", "atm_iv", "status")
    assert {k: out[k] for k in keep} == {k: plain[k] for k in keep}
    assert out["max_pain"] != 13.0


def test_gex_scales_with_spot_squared_and_position_is_scale_free() -> None:
    low = metrics(HAND, spot=5.0)
    assert low["gex_net"] == pytest.approx(-2_900 * (5.0 / 100.0) ** 2, abs=0.01)
    assert low["gex_ratio"] == metrics(HAND)["gex_ratio"] and low["position"] == "short_gamma"


def test_neutral_position_threshold() -> None:
    # Net 5,000 - 4,800 = 200 over gross 9,800: ratio 0.0204 < 0.1.
    balanced = chain({"option_type": "C", "gamma": 0.05}, {"option_type": "P", "gamma": 0.048})
    assert metrics(balanced)["position"] == "neutral"
    assert metrics(balanced, neutral_threshold=0.01)["position"] == "long_gamma"


def test_put_call_ratio_null_without_calls() -> None:
    out = metrics(chain({"option_type": "P", "gamma": 0.01, "volume": 5}))
    assert out["put_call_oi_ratio"] is None and out["put_call_volume_ratio"] is None


# --- eligibility ------------------------------------------------------------------------------


def test_filters_are_counted_once_each() -> None:
    frame = chain(
        {"gamma": 0.01},  # eligible, provider gamma
        {"gamma": None, "implied_volatility": 0.3},  # eligible, gamma from IV
        {"gamma": None, "implied_volatility": None},  # no_gamma_no_iv
        {"gamma": None, "implied_volatility": 0.0},  # no_gamma_no_iv: IV of zero is no IV
        {"gamma": 0.01, "dte": -1},  # expired
        {"gamma": 0.01, "dte": 91},  # beyond_max_dte
        {"gamma": 0.01, "dte": 0},  # eligible: expires today
        {"gamma": 0.01, "dte": 90},  # eligible: exactly max_dte
        {"gamma": 0.01, "open_interest": 0},  # below_min_open_interest
        {"gamma": 0.01, "open_interest": None},  # below_min_open_interest (NULL is 0)
        {"gamma": 0.01, "option_type": "X"},  # invalid_contract
        {"gamma": 0.01, "strike": None},  # invalid_contract
        {"gamma": 0.01, "dte": -5, "open_interest": 0},  # expired wins over low OI
    )
    out = metrics(frame)
    assert out["counts"]["total"] == 13
    assert out["counts"]["eligible"] == 4
    assert out["counts"]["excluded"] == {
        "invalid_contract": 2,
        "adjusted_deliverable": 0,
        "expired": 2,
        "beyond_max_dte": 1,
        "below_min_open_interest": 2,
        "no_gamma_no_iv": 2,
    }
    assert list(out["counts"]["excluded"]) == list(FILTER_REASONS)
    assert out["counts"]["total"] == out["counts"]["eligible"] + sum(out["counts"]["excluded"].values())
    assert out["counts"]["gamma_from_iv"] == 1
    assert out["counts"]["flip_excluded_no_iv"] == 3  # eligible contracts carrying only provider gamma


def test_min_open_interest_and_max_dte_parameters() -> None:
    frame = chain({"gamma": 0.01, "open_interest": 5}, {"gamma": 0.01, "open_interest": 50, "dte": 120})
    out = metrics(frame, min_open_interest=10, max_dte=180)
    assert out["counts"]["eligible"] == 1
    assert out["counts"]["excluded"]["below_min_open_interest"] == 1
    # +1 * 0.01 * 50 * 100 * 100^2 * 0.01 = 5,000
    assert out["gex_by_dte"]["91+"] == {"net": 5_000.0, "gross": 5_000.0, "contracts": 1}
    assert out["params"]["min_open_interest"] == 10 and out["params"]["max_dte"] == 180


def test_missing_gamma_is_computed_from_iv() -> None:
    frame = chain({"strike": 105.0, "gamma": None, "implied_volatility": 0.35, "dte": 20})
    out = metrics(frame)
    years = year_fraction(SNAPSHOT, [AS_OF + timedelta(days=20)])[0]
    gamma = float(bs_gamma(100.0, 105.0, years, 0.35, PARAMS.risk_free_rate))
    assert out["gex_net"] == round(gamma * 10 * 100 * 100.0**2 * 0.01, 2)
    assert out["counts"]["gamma_from_iv"] == 1


def test_missing_multiplier_defaults_to_100() -> None:
    assert metrics(chain({"gamma": 0.05, "shares_per_contract": None}))["gex_net"] == 5_000.0


def test_dataframe_with_database_types_equals_clean_input() -> None:
    clean = chain(
        {"gamma": 0.05, "implied_volatility": 0.3, "strike": 100.0},
        {"gamma": None, "implied_volatility": 0.25, "strike": 95.0, "option_type": "P"},
    )
    raw = clean.astype(object).copy()
    raw["strike"] = [Decimal("100.00"), Decimal("95.00")]
    raw["gamma"] = [Decimal("0.05"), None]
    raw["option_type"] = ["call", "PUT"]
    raw["expiration_date"] = [d.isoformat() for d in clean["expiration_date"]]
    a, b = metrics(clean), metrics(raw)
    assert a == b
    assert a == metrics(ChainArrays.from_frame(clean))


def test_missing_required_column_names_it() -> None:
    from kapman.errors import InputError

    with pytest.raises(InputError, match="open_interest"):
        metrics(chain({"gamma": 0.01}).drop(columns=["open_interest"]))


# --- status ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "status"), [(0, INVALID), (1, LIMITED), (24, LIMITED), (25, FULL), (200, FULL)]
)
def test_status_thresholds(n: int, status: str) -> None:
    frame = many(n) if n else chain({"gamma": 0.01, "open_interest": 0})
    out = metrics(frame)
    assert out["counts"]["eligible"] == n
    assert out["status"] == status
    assert (out["status_reason"] is None) == (status == FULL)


def test_thin_coverage_is_limited() -> None:
    one_side = metrics(many(30, kinds=("C",)))
    assert one_side["status"] == LIMITED and "one_sided_chain" in one_side["status_reason"]
    one_expiry = metrics(many(30, dtes=(10,)))
    assert one_expiry["status"] == LIMITED and "single_expiration" in one_expiry["status_reason"]


@pytest.mark.parametrize(
    ("spot", "snapshot", "reason"),
    [
        (100.0, None, "no_snapshot"),
        (None, SNAPSHOT, "no_spot"),
        (math.nan, SNAPSHOT, "no_spot"),
        (0.0, SNAPSHOT, "no_spot"),
    ],
)
def test_invalid_payloads_keep_the_schema(spot: float | None, snapshot: datetime | None, reason: str) -> None:
    full = metrics(many(30))
    out = compute_dealer_metrics(
        many(30), spot=spot, spot_source="close", as_of=AS_OF, snapshot_time=snapshot, params=PARAMS
    )
    assert out["status"] == INVALID and out["status_reason"].startswith(reason)
    assert out.keys() == full.keys()
    assert out["gex_net"] is None and out["gamma_flip"] is None and out["call_walls"] == []
    assert out["spot_source"] == "close" and out["counts"]["total"] == 30
    assert_plain_json(out)


def test_no_eligible_contracts_is_invalid() -> None:
    out = metrics(chain({"gamma": 0.01, "dte": -1}))
    assert out["status"] == INVALID and out["status_reason"].startswith("no_eligible_contracts")
    assert out["counts"]["excluded"]["expired"] == 1
    assert metrics(chain())["status"] == INVALID  # an empty snapshot


def test_payload_echoes_inputs_and_conventions() -> None:
    out = metrics(many(30))
    assert out["as_of"] == "2025-06-13" and out["snapshot_time"] == "2025-06-13T19:45:00+00:00"
    assert out["spot"] == 100.0 and out["spot_source"] == "snapshot"
    assert out["params"]["risk_free_rate"] == PARAMS.risk_free_rate
    assert "long calls and short puts" in out["conventions"]["dealer_side"]
    assert_plain_json(out)


def test_params_are_validated() -> None:
    # validate() is the one check (A3Params.validate() calls it before a run).
    with pytest.raises(ConfigError, match="flip_range"):
        DealerParams(flip_range=1.5).validate()
    with pytest.raises(ConfigError, match="grid_points"):
        DealerParams(grid_points=2).validate()


def test_realistic_chain_is_json_clean_and_fast_enough() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    strikes = np.round(100 * rng.uniform(0.6, 1.4, n), 1)
    frame = pd.DataFrame(
        {
            "expiration_date": [AS_OF + timedelta(days=int(d)) for d in rng.integers(-2, 120, n)],
            "strike": strikes,
            "option_type": rng.choice(["C", "P"], n),
            "open_interest": rng.integers(0, 5000, n).astype(float),
            "volume": rng.integers(0, 500, n).astype(float),
            "implied_volatility": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0.1, 0.9, n)),
            "delta": np.nan,
            "gamma": np.where(rng.random(n) < 0.3, np.nan, rng.uniform(0.0, 0.08, n)),
            "shares_per_contract": 100,
        }
    )
    out = metrics(frame)
    assert out["status"] == FULL
    assert_plain_json(out)
