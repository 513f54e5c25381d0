"""Every A2 indicator against an independent reference, on several synthetic series.

References: TA-Lib where it has the indicator (called per series, as a trader's script would), else a
slow loop-based textbook definition written out below. Values agree to 1e-6 relative after warm-up.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kapman.metrics.indicators import compute_technical

talib = pytest.importorskip("talib")

RTOL, ATOL = 1e-6, 1e-9
NON_FLAT = ("random_walk", "trending", "gapped", "zero_volume", "choppy")  # the conftest kinds but "flat"
_CACHE: dict[str, dict[str, np.ndarray]] = {}
_SERIES: dict[str, tuple[np.ndarray, ...]] = {}


@pytest.fixture(params=NON_FLAT)
def kind(request, synth) -> str:
    k = request.param
    if k not in _CACHE:
        d = synth.make_series(k)
        _SERIES[k] = tuple(d[f] for f in ("open", "high", "low", "close", "volume"))
        out = compute_technical(*synth.as_panel(d))
        _CACHE[k] = {key: v[:, 0] for key, v in out.items()}
    return k


def ours(kind: str) -> dict[str, np.ndarray]:
    return _CACHE[kind]


def s(kind: str) -> tuple[np.ndarray, ...]:
    """open, high, low, close, volume of the series"""
    return _SERIES[kind]


def check(got: np.ndarray, ref: np.ndarray, *, same_nan: bool = True, atol: float = ATOL) -> None:
    """Equal where the reference is defined; NaN exactly where it is not (when same_nan)."""
    ref = np.asarray(ref, dtype=np.float64)
    both = np.isfinite(got) & np.isfinite(ref)
    assert both.sum() > 0, "nothing to compare"
    np.testing.assert_allclose(got[both], ref[both], rtol=RTOL, atol=atol)
    if same_nan:
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref))


def sma_loop(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    for t in range(n - 1, len(x)):
        out[t] = sum(x[t - n + 1 : t + 1]) / n
    return out


def ema_loop(x: np.ndarray, n: int) -> np.ndarray:
    """EMA seeded with the SMA of the first n defined values (TA-Lib's seeding)."""
    out = np.full(len(x), np.nan)
    start = next(i for i, v in enumerate(x) if not math.isnan(v))
    if start + n > len(x):
        return out
    prev = sum(x[start : start + n]) / n
    out[start + n - 1] = prev
    k = 2.0 / (n + 1)
    for t in range(start + n, len(x)):
        prev = prev + k * (x[t] - prev)
        out[t] = prev
    return out


def stoch_loop(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    for t in range(n - 1, len(x)):
        w = x[t - n + 1 : t + 1]
        if np.isnan(w).any() or max(w) == min(w):
            continue
        out[t] = 100.0 * (x[t] - min(w)) / (max(w) - min(w))
    return out


# ---- TA-Lib references -------------------------------------------------------------------------


def test_rsi_wilder_like_talib(kind):
    _, _, _, c, _ = s(kind)
    check(ours(kind)["momentum.rsi.rsi"], talib.RSI(c, 14))


def test_atr_wilder_like_talib(kind):
    _, h, lo, c, _ = s(kind)
    check(ours(kind)["volatility.atr.average_true_range"], talib.ATR(h, lo, c, 14))


def test_adx_and_di_like_talib(kind):
    _, h, lo, c, _ = s(kind)
    o = ours(kind)
    check(o["trend.adx.adx"], talib.ADX(h, lo, c, 14))
    check(o["trend.adx.adx_pos"], talib.PLUS_DI(h, lo, c, 14))
    check(o["trend.adx.adx_neg"], talib.MINUS_DI(h, lo, c, 14))


def test_aroon_like_talib_and_has_values(kind):
    _, h, lo, _, _ = s(kind)
    o = ours(kind)
    down, up = talib.AROON(h, lo, 25)
    check(o["trend.aroon.aroon_up"], up)
    check(o["trend.aroon.aroon_down"], down)
    check(o["trend.aroon.aroon_indicator"], talib.AROONOSC(h, lo, 25))
    assert np.isfinite(o["trend.aroon.aroon_up"][25:]).all()


def test_cci_like_talib(kind):
    _, h, lo, c, _ = s(kind)
    check(ours(kind)["trend.cci.cci"], talib.CCI(h, lo, c, 20))


def test_moving_averages_like_talib(kind):
    c = s(kind)[3]
    o = ours(kind)
    check(o["trend.ema.ema_indicator"], talib.EMA(c, 14))
    check(o["trend.wma.wma"], talib.WMA(c, 9))
    for n in (14, 20, 50, 200):
        check(o[f"trend.sma.sma_{n}"], talib.SMA(c, n))
    check(o["momentum.kama.kama"], talib.KAMA(c, 10))


def test_macd_is_difference_of_talib_emas(kind):
    # talib.MACD seeds its fast EMA at the slow EMA's first bar (a TA-Lib quirk); the documented
    # convention here is MACD = EMA12 - EMA26 with each EMA seeded independently, as talib.EMA.
    c = s(kind)[3]
    o = ours(kind)
    macd = talib.EMA(c, 12) - talib.EMA(c, 26)
    sig = talib.EMA(macd, 9)
    check(o["trend.macd.macd"], macd)
    check(o["trend.macd.macd_signal"], sig)
    check(o["trend.macd.macd_diff"], macd - sig)


def test_ppo_and_pvo_like_talib_ema(kind):
    _, _, _, c, v = s(kind)
    o = ours(kind)
    for name, x in (("ppo", c), ("pvo", v)):
        line = talib.PPO(x, 12, 26, 1)  # matype=1: EMA (TA-Lib's classic default is SMA)
        sig = talib.EMA(line, 9)
        # zero volume makes EMA26 of volume 0: TA-Lib reports 0, the documented value is NaN
        check(o[f"momentum.{name}.{name}"], line, same_nan=kind != "zero_volume")
        check(o[f"momentum.{name}.{name}_signal"], sig, same_nan=kind != "zero_volume")
        check(o[f"momentum.{name}.{name}_hist"], line - sig, same_nan=kind != "zero_volume")


def test_roc_trix_tsi_like_talib(kind):
    c = s(kind)[3]
    o = ours(kind)
    check(o["momentum.roc.roc"], talib.ROC(c, 12))
    check(o["trend.trix.trix"], talib.TRIX(c, 15))
    check(o["momentum.tsi.tsi"], talib.TSI(c, 25, 13))


def test_stochastics_like_talib(kind):
    _, h, lo, c, _ = s(kind)
    o = ours(kind)
    k, d = talib.STOCHF(h, lo, c, 14, 3, 0)
    # STOCHF reports %K only from the bar %D starts; %K itself is defined from row 13
    check(o["momentum.stoch.stoch"], k, same_nan=False)
    assert (
        np.isfinite(o["momentum.stoch.stoch"][13:]).all() and np.isnan(o["momentum.stoch.stoch"][:13]).all()
    )
    check(o["momentum.stoch.stoch_signal"], d)
    check(o["momentum.williams_r.williams_r"], talib.WILLR(h, lo, c, 14))
    # STOCHRSI in 0..1: stochrsi = fast %K / 100, stochrsi_k = its SMA3, stochrsi_d = SMA3 of that
    fk, fd = talib.STOCHRSI(c, 14, 14, 3, 0)
    check(
        o["momentum.stochrsi.stochrsi"], fk / 100.0, atol=1e-9, same_nan=False
    )  # STOCHRSI: same lag as STOCHF
    assert np.isnan(o["momentum.stochrsi.stochrsi"][:27]).all() and np.isfinite(
        o["momentum.stochrsi.stochrsi"][27]
    )
    check(o["momentum.stochrsi.stochrsi_k"], fd / 100.0, atol=1e-9)
    check(o["momentum.stochrsi.stochrsi_d"], talib.SMA(fd / 100.0, 3), atol=1e-9)


def test_ultimate_oscillator_like_talib(kind):
    _, h, lo, c, _ = s(kind)
    check(ours(kind)["momentum.ultimate_oscillator.ultimate_oscillator"], talib.ULTOSC(h, lo, c, 7, 14, 28))


def test_psar_like_talib(kind):
    _, h, lo, _, _ = s(kind)
    o = ours(kind)
    sar = talib.SAR(h, lo, 0.02, 0.2)
    check(o["trend.psar.psar"], sar)
    up, down = o["trend.psar.psar_up"], o["trend.psar.psar_down"]
    below = sar[1:] <= lo[1:]
    # exactly one of up/down is set on every bar; up when the SAR is under the bar
    assert (np.isfinite(up[1:]) ^ np.isfinite(down[1:])).all()
    np.testing.assert_array_equal(np.isfinite(up[1:]), below | (np.isfinite(up[1:]) & (sar[1:] <= h[1:])))
    flips = np.flatnonzero(np.isfinite(up[2:]) & np.isfinite(down[1:-1])) + 2
    np.testing.assert_array_equal(np.flatnonzero(o["trend.psar.psar_up_indicator"] == 1.0), flips)


def test_bollinger_population_std_like_talib(kind):
    c = s(kind)[3]
    o = ours(kind)
    hi, mid, lo = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    check(o["volatility.bbands.bollinger_mavg"], mid)
    check(o["volatility.bbands.bollinger_hband"], hi)
    check(o["volatility.bbands.bollinger_lband"], lo)
    check(o["volatility.bbands.bollinger_wband"], 100 * (hi - lo) / mid)
    check(o["volatility.bbands.bollinger_pband"], (c - lo) / (hi - lo))
    with np.errstate(invalid="ignore"):
        check(o["volatility.bbands.bollinger_hband_indicator"], np.where(np.isnan(hi), np.nan, c > hi))
        check(o["volatility.bbands.bollinger_lband_indicator"], np.where(np.isnan(lo), np.nan, c < lo))


def test_keltner_ema_atr_variant(kind):
    _, h, lo, c, _ = s(kind)
    o = ours(kind)
    mid = talib.EMA(c, 20)
    atr = talib.ATR(h, lo, c, 10)
    hi, lo = mid + 2 * atr, mid - 2 * atr
    check(o["volatility.keltner.keltner_channel_mband"], mid)
    check(o["volatility.keltner.keltner_channel_hband"], hi)
    check(o["volatility.keltner.keltner_channel_lband"], lo)
    check(o["volatility.keltner.keltner_channel_pband"], (c - lo) / (hi - lo))
    check(o["volatility.keltner.keltner_channel_wband"], 100 * (hi - lo) / mid)
    with np.errstate(invalid="ignore"):
        check(o["volatility.keltner.keltner_channel_hband_indicator"], np.where(np.isnan(hi), np.nan, c > hi))
        check(o["volatility.keltner.keltner_channel_lband_indicator"], np.where(np.isnan(lo), np.nan, c < lo))


def test_donchian_and_ichimoku_like_talib_extrema(kind):
    _, h, lo, c, _ = s(kind)
    o = ours(kind)
    top, bot = talib.MAX(h, 20), talib.MIN(lo, 20)
    check(o["volatility.donchian.donchian_channel_hband"], top)
    check(o["volatility.donchian.donchian_channel_lband"], bot)
    check(o["volatility.donchian.donchian_channel_mband"], (top + bot) / 2)
    check(o["volatility.donchian.donchian_channel_pband"], (c - bot) / (top - bot))
    check(o["volatility.donchian.donchian_channel_wband"], 100 * (top - bot) / talib.SMA(c, 20))
    conv, base = talib.MIDPRICE(h, lo, 9), talib.MIDPRICE(h, lo, 26)
    check(o["trend.ichimoku.ichimoku_conversion_line"], conv)
    check(o["trend.ichimoku.ichimoku_base_line"], base)
    check(o["trend.ichimoku.ichimoku_a"], (conv + base) / 2)  # as of the bar: no forward shift
    check(o["trend.ichimoku.ichimoku_b"], talib.MIDPRICE(h, lo, 52))


def test_volume_indicators_like_talib(kind):
    _, h, lo, c, v = s(kind)
    o = ours(kind)
    zero_vol = kind == "zero_volume"
    # TA-Lib's MFI is 0 when the 14-bar money flows sum below 1.0; the documented value for no flow is NaN
    check(o["volume.mfi.money_flow_index"], talib.MFI(h, lo, c, v, 14), same_nan=not zero_vol)
    check(o["volume.adi.acc_dist_index"], talib.AD(h, lo, c, v))
    # TA-Lib's OBV starts at the first bar's volume; the documented OBV starts at 0 on row 0
    check(o["volume.obv.on_balance_volume"], talib.OBV(c, v) - v[0], atol=1e-6)
    check(o["volume.fi.force_index"], talib.EMA(np.r_[np.nan, np.diff(c) * v[1:]], 13))


def test_awesome_and_mass_index(kind):
    _, h, lo, _, _ = s(kind)
    o = ours(kind)
    med = (h + lo) / 2
    check(o["momentum.awesome_oscillator.awesome_oscillator"], talib.SMA(med, 5) - talib.SMA(med, 34))
    e1 = talib.EMA(h - lo, 9)
    e2 = talib.EMA(e1, 9)
    check(o["trend.mass_index.mass_index"], talib.SUM(e1 / e2, 25))


def test_vortex_like_talib(kind):
    _, h, lo, c, _ = s(kind)
    o = ours(kind)
    vp, vn = talib.VORTEX(h, lo, c, 14)
    check(o["trend.vortex.vortex_indicator_pos"], vp)
    check(o["trend.vortex.vortex_indicator_neg"], vn)
    check(o["trend.vortex.vortex_indicator_diff"], vp - vn)


# ---- textbook (loop) references ----------------------------------------------------------------


def test_dpo_textbook(kind):
    c = s(kind)[3]
    ref = np.full(len(c), np.nan)
    for t in range(19, len(c)):
        ref[t] = c[t - 11] - sum(c[t - 19 : t + 1]) / 20
    check(ours(kind)["trend.dpo.dpo"], ref)


def test_kst_textbook(kind):
    c = s(kind)[3]
    roc = lambda n: np.r_[np.full(n, np.nan), (c[n:] - c[:-n]) / c[:-n]]  # noqa: E731
    kst = 100 * sum(
        w * sma_loop(roc(r), m) for w, r, m in ((1, 10, 10), (2, 15, 10), (3, 20, 10), (4, 30, 15))
    )
    sig = sma_loop(kst, 9)
    o = ours(kind)
    check(o["trend.kst.kst"], kst)
    check(o["trend.kst.kst_sig"], sig)
    check(o["trend.kst.kst_diff"], kst - sig)


def test_stc_textbook(kind):
    c = s(kind)[3]
    macd = ema_loop(c, 23) - ema_loop(c, 50)
    d = ema_loop(stoch_loop(macd, 10), 3)
    ref = ema_loop(stoch_loop(d, 10), 3)
    check(ours(kind)["trend.stc.stc"], ref)


def test_ulcer_index_textbook(kind):
    c = s(kind)[3]
    dd = np.full(len(c), np.nan)
    for t in range(13, len(c)):
        peak = max(c[t - 13 : t + 1])
        dd[t] = 100 * (c[t] - peak) / peak
    ref = np.full(len(c), np.nan)
    for t in range(26, len(c)):
        ref[t] = math.sqrt(sum(x * x for x in dd[t - 13 : t + 1]) / 14)
    check(ours(kind)["volatility.ulcer_index.ulcer_index"], ref, atol=1e-7)


def test_cmf_vwap_eom_textbook(kind):
    _, h, lo, c, v = s(kind)
    o = ours(kind)
    mfv = np.array(
        [0.0 if a == b else ((x - b) - (a - x)) / (a - b) * y for a, b, x, y in zip(h, lo, c, v, strict=True)]
    )
    tp = (h + lo + c) / 3
    cmf = np.full(len(c), np.nan)
    vwap = np.full(len(c), np.nan)
    for t in range(len(c)):
        if t >= 19 and sum(v[t - 19 : t + 1]) > 0:
            cmf[t] = sum(mfv[t - 19 : t + 1]) / sum(v[t - 19 : t + 1])
        if t >= 13 and sum(v[t - 13 : t + 1]) > 0:
            vwap[t] = sum(tp[t - 13 : t + 1] * v[t - 13 : t + 1]) / sum(v[t - 13 : t + 1])
    check(o["volume.cmf.chaikin_money_flow"], cmf)
    check(o["volume.vwap.volume_weighted_average_price"], vwap)
    emv = np.full(len(c), np.nan)
    for t in range(1, len(c)):
        if v[t] > 0:
            emv[t] = 1e8 * ((h[t] - h[t - 1]) + (lo[t] - lo[t - 1])) * (h[t] - lo[t]) / (2 * v[t])
    check(o["volume.eom.ease_of_movement"], emv, atol=1e-6)
    check(o["volume.eom.sma_ease_of_movement"], sma_loop(emv, 14), atol=1e-6)


def test_nvi_vpt_textbook(kind):
    c, v = s(kind)[3], s(kind)[4]
    nvi = [1000.0]
    vpt = [0.0]
    for t in range(1, len(c)):
        ret = (c[t] - c[t - 1]) / c[t - 1]
        nvi.append(nvi[-1] * (1 + ret) if v[t] < v[t - 1] else nvi[-1])
        vpt.append(vpt[-1] + v[t] * ret)
    o = ours(kind)
    check(o["volume.nvi.negative_volume_index"], np.array(nvi))
    check(o["volume.vpt.volume_price_trend"], np.array(vpt), atol=1e-6)


def test_return_series_textbook(kind):
    c = s(kind)[3]
    o = ours(kind)
    check(o["others.dr.daily_return"], np.r_[np.nan, [100 * (c[t] / c[t - 1] - 1) for t in range(1, len(c))]])
    check(
        o["others.dlr.daily_log_return"],
        np.r_[np.nan, [100 * math.log(c[t] / c[t - 1]) for t in range(1, len(c))]],
    )
    check(o["others.cr.cumulative_return"], 100 * (c / c[0] - 1), atol=1e-9)


def test_mfi_counts_equal_hlc_as_no_flow_like_talib():
    # Cent prices whose H+L+C equals the day before's in decimal: summed in floating point the two
    # sums differ in the last bit (checked below), which must not count as money flow.
    rng = np.random.default_rng(3)
    n = 80
    c = np.round(50 + np.cumsum(rng.normal(0, 0.3, n)), 2)
    h, lo = np.round(c + rng.uniform(0.01, 0.5, n), 2), np.round(c - rng.uniform(0.01, 0.5, n), 2)
    for t in range(1, n, 3):
        d = round(float(rng.uniform(0.01, 0.2)), 2)
        h[t], lo[t], c[t] = round(h[t - 1] + d, 2), round(lo[t - 1] - d, 2), c[t - 1]
    v = np.round(rng.uniform(1e5, 1e6, n))
    ties = range(1, n, 3)
    assert any(h[t] + lo[t] + c[t] != h[t - 1] + lo[t - 1] + c[t - 1] for t in ties), "no float tie to test"
    got = compute_technical(c[:, None], h[:, None], lo[:, None], c[:, None], v[:, None])
    mfi = got["volume.mfi.money_flow_index"][:, 0]
    ref = talib.MFI(h, lo, c, v, 14)
    both = np.isfinite(ref)
    np.testing.assert_allclose(mfi[both], ref[both], rtol=1e-12, atol=1e-9)
