"""Opt-in candlestick patterns: TA-Lib's 61 CDL functions, per column."""

from __future__ import annotations

import numpy as np
import pytest

talib = pytest.importorskip("talib")

from kapman.metrics.patterns import PATTERN_KEYS, compute_patterns  # noqa: E402


def test_61_lower_case_keys():
    assert len(PATTERN_KEYS) == 61 == len({f for f in talib.get_functions() if f.startswith("CDL")})
    assert PATTERN_KEYS[0] == "pattern_recognition.cdl2crows"
    assert PATTERN_KEYS[-1] == "pattern_recognition.cdlxsidegap3methods"


def test_matches_talib_per_column_and_masks_nan(synth):
    a, b = synth.make_series("gapped", bars=80), synth.make_series("choppy", bars=80)
    o, h, lo, c = (np.stack([a[k], b[k]], axis=1) for k in ("open", "high", "low", "close"))
    c = c.copy()
    c[50, 1] = np.nan
    out = compute_patterns(o, h, lo, c)
    assert set(out) == set(PATTERN_KEYS)
    ref = talib.CDLENGULFING(a["open"], a["high"], a["low"], a["close"]).astype(float)
    got = out["pattern_recognition.cdlengulfing"][:, 0]
    ok = np.isfinite(got)
    np.testing.assert_array_equal(got[ok], ref[ok])
    assert ok[2:].all()
    for key in PATTERN_KEYS:
        assert np.isnan(out[key][50, 1]), key
