"""The normaliser's inlined common path against ``contract_row``, contract by contract."""

from __future__ import annotations

import copy
import random
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from kapman.clock import ny_date_of
from kapman.ingest.options.normalise import (
    SAMPLES,
    ChainNormaliser,
    Malformed,
    collision_reason,
    contract_row,
    normalise_chain,
    preference,
)

SNAPSHOT = datetime(2025, 12, 19, 21, 0, tzinfo=UTC)
TID = uuid4()

#: Values a field may take in a vendor payload: the usual ones and the rough edges.
ODD = [None, "", "n/a", True, False, 0, -3, 7, 0.0, -0.0, 2.5, float("nan"), float("inf"), [], {}, [1], 10**30]


def reference(results: list[Any]) -> tuple[list[tuple], Counter, list[str], int, Counter]:
    """normalise_chain as written before the inlined path: contract_row for every result (and the
    values that were not numbers, counted for the contracts kept)."""
    today = ny_date_of(SNAPSHOT)
    kept: dict[tuple, tuple] = {}
    dropped: Counter = Counter()
    samples: list[str] = []
    not_numbers: Counter = Counter()
    for result in results:
        unread: list[tuple[str, Any]] = []
        try:
            row = contract_row(result, SNAPSHOT, TID, unread=unread)
        except Malformed as exc:
            dropped["malformed"] += 1
            if len(samples) < SAMPLES:
                samples.append(str(exc))
            continue
        if isinstance(row, str):
            dropped[row] += 1
            continue
        if row[2] < today:
            dropped["expired"] += 1
            continue
        key = row[2:5]
        current = kept.get(key)
        if current is not None:
            loser = row if preference(row) >= preference(current) else current
            dropped[collision_reason(loser)] += 1
            if loser is row:
                continue
        kept[key] = row
        not_numbers.update(name for name, _value in unread)
    return list(kept.values()), dropped, samples, len(results), not_numbers


def contract(rng: random.Random, i: int) -> dict:
    strike = rng.choice([100.0, 100, 150.5, 150.50001, 7.25, 0.5, 12.345678])
    kind = rng.choice(["call", "put", "call", "put", "other"])
    expiration = rng.choice(["2025-12-18", "2025-12-19", "2026-01-16", "2026-03-20"])
    tail = f"{expiration[2:].replace('-', '')}{kind[0].upper()}"  # the ticker's expiration and type
    return {
        "details": {
            "contract_type": kind,
            "expiration_date": expiration,
            "shares_per_contract": rng.choice([100, 100, 100, 150, 10]),
            "strike_price": strike,
            "ticker": rng.choice([f"O:X{tail}{i:08d}", f"O:X1{tail}{i % 7:08d}", f" O:X{tail}{i:08d} "]),
        },
        "greeks": rng.choice([{"delta": 0.5, "gamma": 0.01, "theta": -0.1, "vega": 0.2}, {}, None]),
        "implied_volatility": 0.3,
        "open_interest": 120,
        "day": {"volume": 85},
        "last_quote": {"bid": 1.0, "ask": 1.2},
        "last_trade": {"price": 1.1},
        "underlying_asset": rng.choice([{"price": 150.0}, {"value": 6800.5}, {"price": None, "value": 3}]),
    }


def mutate(rng: random.Random, result: dict) -> Any:
    """One field (or the whole result) replaced by an odd value."""
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(["not an object", None, [], 5])
    target = result["details"] if roll < 0.5 else result
    if target is result and rng.random() < 0.5:
        nested = rng.choice(["greeks", "day", "last_quote", "last_trade", "underlying_asset", "details"])
        if isinstance(result.get(nested), dict) and result[nested] and rng.random() < 0.7:
            target = result[nested]
        else:
            result[nested] = rng.choice(ODD)
            return result
    key = rng.choice(sorted(target) or ["x"])
    if rng.random() < 0.2:
        target.pop(key, None)
    else:
        target[key] = rng.choice([*ODD, "2026-01-16", "12/19/2025", "call", "put", "other", "O:Y"])
    return result


@pytest.mark.parametrize("seed", range(40))
def test_pages_match_contract_row(seed: int) -> None:
    rng = random.Random(seed)
    results: list[Any] = []
    for i in range(300):
        item = contract(rng, i)
        results.append(mutate(rng, item) if rng.random() < 0.3 else item)
    rows, dropped, samples, contracts, not_numbers = reference(copy.deepcopy(results))
    normaliser = ChainNormaliser(SNAPSHOT, TID)
    cut = sorted(rng.sample(range(1, len(results)), 3))
    for start, end in zip([0, *cut], [*cut, len(results)], strict=True):
        normaliser.add(results[start:end])  # pages of uneven size
    chain = normaliser.finish()
    assert chain.rows == rows and chain.contracts == contracts
    assert +chain.dropped == +dropped and chain.samples == samples
    assert chain.not_numbers == not_numbers and set(chain.not_number_examples) == set(not_numbers)
    for got, want in zip(chain.rows, rows, strict=True):  # the same types, not just equal values
        assert list(map(type, got)) == list(map(type, want))
        assert str(got[3]) == str(want[3])
    whole = normalise_chain(results, SNAPSHOT, TID)
    assert whole.rows == rows and +whole.dropped == +dropped


def test_int_and_float_strikes_share_the_memo() -> None:
    base = {"details": {"contract_type": "call", "expiration_date": "2026-01-16", "ticker": "O:A260116C00150000"}}
    chain = normalise_chain(
        [
            {"details": {**base["details"], "strike_price": 150}},
            {"details": {**base["details"], "strike_price": 150.0, "ticker": "O:B260116P00150000",
                         "contract_type": "put"}},
            {"details": {**base["details"], "strike_price": True, "ticker": "O:C260116C00150000"}},
        ],
        SNAPSHOT,
        TID,
    )
    assert [r[3] for r in chain.rows] == [Decimal("150.0000")] * 2 and str(chain.rows[1][3]) == "150.0000"
    assert chain.dropped == {"malformed": 1} and chain.samples == ["no strike_price"]
