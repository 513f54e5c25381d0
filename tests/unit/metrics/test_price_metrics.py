"""price.compute_price_metrics against a written-out definition, plus edge cases."""

from __future__ import annotations

import math

import numpy as np

from kapman.metrics.price import compute_price_metrics


def reference(close: np.ndarray, volume: np.ndarray):
    n = len(close)
    rvol, vsi, hv = (np.full(n, np.nan) for _ in range(3))
    for t in range(20, n):
        prior = volume[t - 20 : t]
        mean = sum(prior) / 20
        std = math.sqrt(sum((x - mean) ** 2 for x in prior) / 20)
        rvol[t] = volume[t] / mean if mean else np.nan
        vsi[t] = (volume[t] - mean) / std if std else np.nan
        rets = [math.log(close[k] / close[k - 1]) for k in range(t - 19, t + 1)]
        m = sum(rets) / 20
        hv[t] = math.sqrt(sum((r - m) ** 2 for r in rets) / 19) * math.sqrt(252)
    return rvol, vsi, hv


def test_matches_reference(synth):
    for kind in ("random_walk", "gapped", "zero_volume"):
        d = synth.make_series(kind)
        out = compute_price_metrics(d["close"][:, None], d["volume"][:, None])
        rvol, vsi, hv = reference(d["close"], d["volume"])
        for got, ref in ((out["rvol"], rvol), (out["vsi"], vsi), (out["hv"], hv)):
            np.testing.assert_array_equal(np.isfinite(got[:, 0]), np.isfinite(ref))
            ok = np.isfinite(ref)
            np.testing.assert_allclose(got[ok, 0], ref[ok], rtol=1e-6, atol=1e-12)
        np.testing.assert_array_equal(out["close"][:, 0], d["close"])
        assert set(out) == {"rvol", "vsi", "hv", "close"}


def test_hv_is_annualised_decimal():
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 2000)))[:, None]  # 1 % daily ~ 16 % a year
    hv = compute_price_metrics(close, np.ones_like(close))["hv"]
    assert 0.12 < np.nanmedian(hv) < 0.20


def test_constant_volume_and_prices():
    close = np.full((40, 2), 10.0)
    vol = np.full((40, 2), 500.0)
    out = compute_price_metrics(close, vol)
    np.testing.assert_array_equal(out["rvol"][20:], 1.0)
    assert np.isnan(out["vsi"]).all()  # std of the prior 20 volumes is 0
    np.testing.assert_array_equal(out["hv"][20:], 0.0)
    assert np.isnan(out["rvol"][:20]).all() and np.isnan(out["hv"][:20]).all()


def test_zero_volume_never_inf_and_causal():
    rng = np.random.default_rng(2)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (60, 3)), axis=0))
    vol = rng.uniform(1e3, 1e4, (60, 3))
    vol[5:30, 1] = 0.0
    out = compute_price_metrics(close, vol)
    assert not any(np.isinf(a).any() for a in out.values())
    assert np.isnan(out["rvol"][25:30, 1]).all()
    vol2 = vol.copy()
    vol2[41:] *= 3
    out2 = compute_price_metrics(close, vol2)
    for k in out:
        np.testing.assert_array_equal(out2[k][:41], out[k][:41])
