"""Deterministic synthetic OHLCV series for the metric kernel tests (no randomness between runs)."""

from __future__ import annotations

import numpy as np
import pytest

SERIES_KINDS = ("random_walk", "trending", "flat", "gapped", "zero_volume", "choppy")


def make_series(kind: str, bars: int = 300, seed: int = 7) -> dict[str, np.ndarray]:
    """One ticker's open/high/low/close/volume as 1-D float64 arrays."""
    rng = np.random.default_rng(seed)
    if kind == "flat":
        close = np.full(bars, 42.5)
        return {
            "open": close.copy(),
            "high": close.copy(),
            "low": close.copy(),
            "close": close,
            "volume": np.full(bars, 1000.0),
        }
    steps = rng.normal(0.0, 0.015, bars)
    if kind == "trending":
        steps += 0.004
    if kind == "choppy":
        steps = 0.03 * np.sin(np.arange(bars) / 3.0) + rng.normal(0.0, 0.002, bars)
    close = 40.0 * np.exp(np.cumsum(steps))
    if kind == "gapped":  # overnight gaps: opens away from the prior close, some bars flat
        close *= np.exp(np.where(rng.uniform(size=bars) < 0.08, rng.normal(0, 0.08, bars), 0.0).cumsum())
    spread = np.abs(rng.normal(0.0, 0.012, bars)) * close
    high = close + spread * rng.uniform(0.0, 1.0, bars)
    low = close - spread * rng.uniform(0.0, 1.0, bars)
    open_ = low + (high - low) * rng.uniform(0.0, 1.0, bars)
    if kind == "gapped":
        flat = rng.uniform(size=bars) < 0.1
        high[flat] = low[flat] = open_[flat] = close[flat]
    volume = np.round(rng.lognormal(12.0, 0.6, bars))
    if kind == "zero_volume":
        volume[40:75] = 0.0
        volume[200:203] = 0.0
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def as_panel(series: dict[str, np.ndarray], columns: int = 1) -> list[np.ndarray]:
    """(T, columns) open/high/low/close/volume with the series repeated in every column."""
    return [
        np.repeat(series[k][:, None], columns, axis=1) for k in ("open", "high", "low", "close", "volume")
    ]


@pytest.fixture(params=SERIES_KINDS)
def series(request) -> dict[str, np.ndarray]:
    return make_series(request.param)


class Synthetic:
    """Handle on the generators for test modules (conftest itself is not importable by name)."""

    kinds = SERIES_KINDS
    make_series = staticmethod(make_series)
    as_panel = staticmethod(as_panel)


@pytest.fixture(scope="session")
def synth() -> type[Synthetic]:
    return Synthetic
