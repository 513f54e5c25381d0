"""Edge cases, panel invariance, causality and the key list of compute_technical."""

from __future__ import annotations

import numpy as np
import pytest

from kapman.metrics.indicators import MAX_WARMUP_BARS, TECHNICAL_KEYS, compute_technical, compute_technical_cells

# The A2 surface (docs: a2_surface.md), written out: every key must always be present.
EXPECTED_KEYS = {
    "momentum.awesome_oscillator.awesome_oscillator", "momentum.kama.kama",
    "momentum.ppo.ppo", "momentum.ppo.ppo_signal", "momentum.ppo.ppo_hist",
    "momentum.pvo.pvo", "momentum.pvo.pvo_signal", "momentum.pvo.pvo_hist",
    "momentum.roc.roc", "momentum.rsi.rsi",
    "momentum.stochrsi.stochrsi", "momentum.stochrsi.stochrsi_k", "momentum.stochrsi.stochrsi_d",
    "momentum.stoch.stoch", "momentum.stoch.stoch_signal", "momentum.tsi.tsi",
    "momentum.ultimate_oscillator.ultimate_oscillator", "momentum.williams_r.williams_r",
    "volatility.atr.average_true_range",
    "volatility.bbands.bollinger_mavg", "volatility.bbands.bollinger_hband", "volatility.bbands.bollinger_lband",  # noqa: E501
    "volatility.bbands.bollinger_wband", "volatility.bbands.bollinger_pband",
    "volatility.bbands.bollinger_hband_indicator", "volatility.bbands.bollinger_lband_indicator",
    "volatility.donchian.donchian_channel_hband", "volatility.donchian.donchian_channel_lband",
    "volatility.donchian.donchian_channel_mband", "volatility.donchian.donchian_channel_pband",
    "volatility.donchian.donchian_channel_wband",
    "volatility.keltner.keltner_channel_hband", "volatility.keltner.keltner_channel_lband",
    "volatility.keltner.keltner_channel_mband", "volatility.keltner.keltner_channel_pband",
    "volatility.keltner.keltner_channel_wband", "volatility.keltner.keltner_channel_hband_indicator",
    "volatility.keltner.keltner_channel_lband_indicator", "volatility.ulcer_index.ulcer_index",
    "trend.adx.adx", "trend.adx.adx_pos", "trend.adx.adx_neg",
    "trend.aroon.aroon_up", "trend.aroon.aroon_down", "trend.aroon.aroon_indicator",
    "trend.cci.cci", "trend.dpo.dpo", "trend.ema.ema_indicator",
    "trend.ichimoku.ichimoku_conversion_line", "trend.ichimoku.ichimoku_base_line",
    "trend.ichimoku.ichimoku_a", "trend.ichimoku.ichimoku_b",
    "trend.kst.kst", "trend.kst.kst_sig", "trend.kst.kst_diff",
    "trend.macd.macd", "trend.macd.macd_signal", "trend.macd.macd_diff",
    "trend.mass_index.mass_index",
    "trend.psar.psar", "trend.psar.psar_up", "trend.psar.psar_down",
    "trend.psar.psar_up_indicator", "trend.psar.psar_down_indicator",
    "trend.sma.sma_14", "trend.sma.sma_20", "trend.sma.sma_50", "trend.sma.sma_200",
    "trend.stc.stc", "trend.trix.trix",
    "trend.vortex.vortex_indicator_pos", "trend.vortex.vortex_indicator_neg", "trend.vortex.vortex_indicator_diff",  # noqa: E501
    "trend.wma.wma",
    "volume.adi.acc_dist_index", "volume.cmf.chaikin_money_flow",
    "volume.eom.ease_of_movement", "volume.eom.sma_ease_of_movement", "volume.fi.force_index",
    "volume.mfi.money_flow_index", "volume.nvi.negative_volume_index", "volume.obv.on_balance_volume",
    "volume.vpt.volume_price_trend", "volume.vwap.volume_weighted_average_price",
    "others.cr.cumulative_return", "others.dlr.daily_log_return", "others.dr.daily_return",
}  # fmt: skip
CUMULATIVE = {
    "volume.adi.acc_dist_index", "volume.nvi.negative_volume_index", "volume.obv.on_balance_volume",
    "volume.vpt.volume_price_trend", "others.cr.cumulative_return",
}  # fmt: skip


def test_every_surface_key_present_in_order():
    assert set(TECHNICAL_KEYS) == EXPECTED_KEYS
    assert len(TECHNICAL_KEYS) == len(EXPECTED_KEYS)
    out = compute_technical(*[np.full((3, 2), 10.0)] * 5)
    assert tuple(out) == TECHNICAL_KEYS
    assert all(a.shape == (3, 2) and a.dtype == np.float64 for a in out.values())


def test_max_warmup_is_the_longest_leading_nan_run(synth):
    out = compute_technical(*synth.as_panel(synth.make_series("random_walk")))
    first = {k: int(np.flatnonzero(np.isfinite(a[:, 0]))[0]) for k, a in out.items()}
    assert max(first.values()) == MAX_WARMUP_BARS == first["trend.sma.sma_200"]
    assert all(np.isfinite(a[MAX_WARMUP_BARS:, 0]).all() for k, a in out.items() if "psar_" not in k)


def test_fewer_bars_than_window_gives_nan(synth):
    d = synth.make_series("random_walk", bars=12)
    out = compute_technical(*synth.as_panel(d))
    for key in (
        "trend.sma.sma_14",
        "momentum.rsi.rsi",
        "volatility.bbands.bollinger_pband",
        "trend.adx.adx",
        "trend.aroon.aroon_up",
        "trend.ichimoku.ichimoku_b",
        "trend.stc.stc",
        "momentum.tsi.tsi",
    ):
        assert np.isnan(out[key]).all(), key
    assert np.isfinite(out["trend.wma.wma"][8:]).all()


def test_zero_and_one_bar_panels():
    for t in (0, 1):
        out = compute_technical(*[np.full((t, 3), 5.0)] * 5)
        assert all(a.shape == (t, 3) for a in out.values())


def test_constant_prices_never_inf_and_undefined_ratios_nan(synth):
    out = compute_technical(*synth.as_panel(synth.make_series("flat")))
    for key, a in out.items():
        assert not np.isinf(a).any(), key
    for key in (
        "momentum.rsi.rsi",
        "momentum.stoch.stoch",
        "momentum.williams_r.williams_r",
        "trend.cci.cci",
        "volatility.bbands.bollinger_pband",
        "volatility.donchian.donchian_channel_pband",
        "volatility.keltner.keltner_channel_pband",
        "momentum.stochrsi.stochrsi",
        "trend.adx.adx",
        "trend.vortex.vortex_indicator_pos",
        "momentum.ultimate_oscillator.ultimate_oscillator",
        "trend.mass_index.mass_index",
        "momentum.tsi.tsi",
    ):
        assert np.isnan(out[key]).all(), key
    np.testing.assert_array_equal(out["trend.sma.sma_20"][19:], 42.5)
    np.testing.assert_array_equal(out["volatility.bbands.bollinger_wband"][19:], 0.0)
    np.testing.assert_array_equal(out["volatility.atr.average_true_range"][14:], 0.0)
    np.testing.assert_array_equal(out["trend.macd.macd"][25:], 0.0)
    np.testing.assert_array_equal(out["volume.obv.on_balance_volume"], 0.0)
    np.testing.assert_array_equal(out["volatility.ulcer_index.ulcer_index"][26:], 0.0)


def test_zero_volume_gives_nan_ratios_not_inf(synth):
    d = synth.make_series("random_walk")
    d["volume"][:] = 0.0
    out = compute_technical(*synth.as_panel(d))
    for key, a in out.items():
        assert not np.isinf(a).any(), key
    for key in (
        "volume.cmf.chaikin_money_flow",
        "volume.vwap.volume_weighted_average_price",
        "volume.mfi.money_flow_index",
        "volume.eom.ease_of_movement",
        "momentum.pvo.pvo",
    ):
        assert np.isnan(out[key]).all(), key
    np.testing.assert_array_equal(out["volume.obv.on_balance_volume"], 0.0)
    np.testing.assert_array_equal(out["volume.nvi.negative_volume_index"], 1000.0)


@pytest.mark.parametrize("gap_at", [60, 150])
def test_nan_inside_a_column_only_affects_nearby_rows(synth, gap_at):
    d = synth.make_series("random_walk")
    bad = {k: v.copy() for k, v in d.items()}
    for k in ("open", "high", "low", "close", "volume"):
        bad[k][gap_at] = np.nan
    out = compute_technical(*synth.as_panel(bad))
    after = compute_technical(*synth.as_panel({k: v[gap_at + 1 :] for k, v in d.items()}))
    before = compute_technical(*synth.as_panel(d))
    for key in TECHNICAL_KEYS:
        a = out[key][:, 0]
        assert np.isnan(a[gap_at]), key
        np.testing.assert_array_equal(a[:gap_at], before[key][:gap_at, 0])  # causal: untouched before
        if key in CUMULATIVE:  # skips the bar and carries on
            assert np.isfinite(a[gap_at + 2 :][: len(a) - gap_at - 2]).any(), key
            continue
        # everything else restarts as if the series began after the NaN
        tail = slice(gap_at + 1 + MAX_WARMUP_BARS, None)
        if a[tail].size:
            np.testing.assert_allclose(
                a[tail], after[key][MAX_WARMUP_BARS:, 0], rtol=1e-9, atol=1e-9, err_msg=key
            )
    assert np.isnan(out["trend.sma.sma_20"][gap_at : gap_at + 20, 0]).all()
    assert np.isfinite(out["trend.sma.sma_20"][gap_at + 20, 0])
    assert np.isfinite(out["momentum.rsi.rsi"][gap_at + 1 + 14 + 1, 0])


def test_shorter_column_with_trailing_padding(synth):
    full = synth.make_series("trending")
    short = {k: np.r_[v[:220], np.full(80, np.nan)] for k, v in full.items()}
    panel = [np.stack([full[k], short[k]], axis=1) for k in ("open", "high", "low", "close", "volume")]
    out = compute_technical(*panel)
    for key, a in out.items():
        np.testing.assert_array_equal(a[:220, 1], a[:220, 0], err_msg=key)


def test_column_zero_identical_in_one_and_ten_thousand_column_panels(synth):
    d = synth.make_series("gapped", bars=230)
    one = compute_technical(*synth.as_panel(d))
    rng = np.random.default_rng(3)
    big = []
    for k in ("open", "high", "low", "close", "volume"):
        noise = d[k][:, None] * rng.uniform(0.9, 1.1, (1, 10_000))
        noise[:, 0] = d[k]
        noise[:, -1] = d[k]
        big.append(noise)
    many = compute_technical(*big)
    for key in TECHNICAL_KEYS:
        np.testing.assert_allclose(many[key][:, 0], one[key][:, 0], rtol=1e-12, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(many[key][:, -1], one[key][:, 0], rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("cut", [30, 120, 240])
def test_causal_rows_up_to_t_ignore_later_rows(synth, cut):
    d = synth.make_series("choppy")
    base = compute_technical(*synth.as_panel(d))
    changed = {k: v.copy() for k, v in d.items()}
    rng = np.random.default_rng(cut)
    for k in changed:
        changed[k][cut + 1 :] *= rng.uniform(0.5, 1.5, len(changed[k]) - cut - 1)
    alt = compute_technical(*synth.as_panel(changed))
    for key in TECHNICAL_KEYS:
        np.testing.assert_array_equal(alt[key][: cut + 1], base[key][: cut + 1], err_msg=key)


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        compute_technical(
            np.zeros((5, 2)), np.zeros((5, 2)), np.zeros((5, 2)), np.zeros((5, 3)), np.zeros((5, 2))
        )


def test_cells_are_the_full_series_values_at_those_cells():
    rng = np.random.default_rng(7)
    t, n = 260, 9
    close = 40.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, (t, n)), axis=0))
    high, low = close * 1.01, close * 0.99
    panel = (low + (high - low) * 0.5, high, low, close, rng.lognormal(12.0, 0.4, (t, n)))
    full = compute_technical(*panel)
    rows = np.array([259, 259, 200, 10, 258, 259])
    cols = np.array([0, 8, 3, 3, 5, 4])
    cells = compute_technical_cells(*panel, rows, cols)
    assert cells.shape == (len(rows), len(TECHNICAL_KEYS))
    for k, key in enumerate(TECHNICAL_KEYS):
        np.testing.assert_array_equal(cells[:, k], full[key][rows, cols], err_msg=key)
    assert compute_technical_cells(*panel, rows[:0], cols[:0]).shape == (0, len(TECHNICAL_KEYS))
