"""A2 technical indicators for a whole (T bars x N tickers) panel at once.

``compute_technical`` maps every dotted ``category.indicator.output`` path of the A2 JSON surface
to a (T, N) float64 array (NaN = not computable); ``compute_technical_cells`` gives the same values
at chosen cells only, as the A2 job wants them. Definitions and conventions: docs/a2_indicators.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kapman.metrics import momentum, others, psar, trend, volatility, volume
from kapman.metrics._panel import Panel

TECHNICAL_KEYS: tuple[str, ...] = (
    "momentum.awesome_oscillator.awesome_oscillator",
    "momentum.kama.kama",
    "momentum.ppo.ppo",
    "momentum.ppo.ppo_signal",
    "momentum.ppo.ppo_hist",
    "momentum.pvo.pvo",
    "momentum.pvo.pvo_signal",
    "momentum.pvo.pvo_hist",
    "momentum.roc.roc",
    "momentum.rsi.rsi",
    "momentum.stochrsi.stochrsi",
    "momentum.stochrsi.stochrsi_k",
    "momentum.stochrsi.stochrsi_d",
    "momentum.stoch.stoch",
    "momentum.stoch.stoch_signal",
    "momentum.tsi.tsi",
    "momentum.ultimate_oscillator.ultimate_oscillator",
    "momentum.williams_r.williams_r",
    "volatility.atr.average_true_range",
    "volatility.bbands.bollinger_mavg",
    "volatility.bbands.bollinger_hband",
    "volatility.bbands.bollinger_lband",
    "volatility.bbands.bollinger_wband",
    "volatility.bbands.bollinger_pband",
    "volatility.bbands.bollinger_hband_indicator",
    "volatility.bbands.bollinger_lband_indicator",
    "volatility.donchian.donchian_channel_hband",
    "volatility.donchian.donchian_channel_lband",
    "volatility.donchian.donchian_channel_mband",
    "volatility.donchian.donchian_channel_pband",
    "volatility.donchian.donchian_channel_wband",
    "volatility.keltner.keltner_channel_hband",
    "volatility.keltner.keltner_channel_lband",
    "volatility.keltner.keltner_channel_mband",
    "volatility.keltner.keltner_channel_pband",
    "volatility.keltner.keltner_channel_wband",
    "volatility.keltner.keltner_channel_hband_indicator",
    "volatility.keltner.keltner_channel_lband_indicator",
    "volatility.ulcer_index.ulcer_index",
    "trend.adx.adx",
    "trend.adx.adx_pos",
    "trend.adx.adx_neg",
    "trend.aroon.aroon_up",
    "trend.aroon.aroon_down",
    "trend.aroon.aroon_indicator",
    "trend.cci.cci",
    "trend.dpo.dpo",
    "trend.ema.ema_indicator",
    "trend.ichimoku.ichimoku_conversion_line",
    "trend.ichimoku.ichimoku_base_line",
    "trend.ichimoku.ichimoku_a",
    "trend.ichimoku.ichimoku_b",
    "trend.kst.kst",
    "trend.kst.kst_sig",
    "trend.kst.kst_diff",
    "trend.macd.macd",
    "trend.macd.macd_signal",
    "trend.macd.macd_diff",
    "trend.mass_index.mass_index",
    "trend.psar.psar",
    "trend.psar.psar_up",
    "trend.psar.psar_down",
    "trend.psar.psar_up_indicator",
    "trend.psar.psar_down_indicator",
    "trend.sma.sma_14",
    "trend.sma.sma_20",
    "trend.sma.sma_50",
    "trend.sma.sma_200",
    "trend.stc.stc",
    "trend.trix.trix",
    "trend.vortex.vortex_indicator_pos",
    "trend.vortex.vortex_indicator_neg",
    "trend.vortex.vortex_indicator_diff",
    "trend.wma.wma",
    "volume.adi.acc_dist_index",
    "volume.cmf.chaikin_money_flow",
    "volume.eom.ease_of_movement",
    "volume.eom.sma_ease_of_movement",
    "volume.fi.force_index",
    "volume.mfi.money_flow_index",
    "volume.nvi.negative_volume_index",
    "volume.obv.on_balance_volume",
    "volume.vpt.volume_price_trend",
    "volume.vwap.volume_weighted_average_price",
    "others.cr.cumulative_return",
    "others.dlr.daily_log_return",
    "others.dr.daily_return",
)

# Leading rows of NaN before the slowest indicator (the 200-bar SMA) has its first value: a window
# needs MAX_WARMUP_BARS + 1 bars for every key to be computable on its last row. Recursive
# indicators are exact from their seed row (they are defined on the window, not as an
# approximation of an infinite history), so no extra "burn-in" is added; the runner-up is STC (71).
MAX_WARMUP_BARS = 199


# Tickers are processed in blocks of this many columns: a block's working arrays (T x 2048 x 8 bytes,
# 4.9 MB at T=300) stay in cache, which is markedly faster than whole-panel operations.
COLUMN_BLOCK = 2048
# Column blocks computed concurrently (each block is independent; results do not depend on it).
WORKERS = min(2, os.cpu_count() or 1)


def _compute_block(*ohlcv: np.ndarray, keep: Callable[[np.ndarray], np.ndarray] | None = None,
                   ) -> dict[str, np.ndarray]:
    """Every key for one block; ``keep`` reduces each family's outputs as soon as they exist, so
    that only one family's full series are alive at a time."""
    p = Panel(*ohlcv)
    found: dict[str, np.ndarray] = {}
    for family in (momentum.compute, volatility.compute, trend.compute, volume.compute, others.compute,
                   lambda panel: psar.compute(panel.high, panel.low)):
        part = family(p)
        found.update(part if keep is None else {k: keep(v) for k, v in part.items()})
        del part
    return found


def _panel_arrays(*ohlcv: np.ndarray) -> list[np.ndarray]:
    """The five OHLCV arrays as float64, or ValueError unless they share one (T, N) shape."""
    arrays = [np.asarray(a, dtype=np.float64) for a in ohlcv]
    shape = arrays[0].shape
    if len(shape) != 2 or any(a.shape != shape for a in arrays):
        raise ValueError(
            f"open/high/low/close/volume must share one (T, N) shape, got {[a.shape for a in arrays]}"
        )
    return arrays


def compute_technical(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, volume_: np.ndarray
) -> dict[str, np.ndarray]:
    """All A2 technical indicators for (T, N) OHLCV arrays; see the module docstring."""
    arrays = _panel_arrays(open_, high, low, close, volume_)
    shape = arrays[0].shape
    if shape[0] == 0:
        return {key: np.empty(shape, dtype=np.float64) for key in TECHNICAL_KEYS}
    out = {key: np.empty(shape, dtype=np.float64) for key in TECHNICAL_KEYS}
    blocks = [slice(j0, j0 + COLUMN_BLOCK) for j0 in range(0, shape[1], COLUMN_BLOCK)]

    def run(cols: slice) -> None:
        found = _compute_block(*(a[:, cols] for a in arrays))
        for key in TECHNICAL_KEYS:
            out[key][:, cols] = found[key]

    if len(blocks) == 1 or WORKERS <= 1:
        for cols in blocks:
            run(cols)
    else:  # numpy releases the GIL inside its loops, so blocks overlap on a multi-core machine
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(run, blocks))
    return out


def compute_technical_cells(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, volume_: np.ndarray,
    rows: np.ndarray, cols: np.ndarray,
) -> np.ndarray:
    """Every key at the cells (``rows[i]``, ``cols[i]``) of (T, N) panels: a (cells, keys) array in
    ``TECHNICAL_KEYS`` order.

    The values are ``compute_technical``'s, but each family's full series are cut down to the cells
    as soon as they are computed, so a call's peak memory is one family's outputs rather than all
    ~90: wide panels (whose per-bar recursions cost less per ticker) fit the memory a narrow one
    would need.  The caller chunks the tickers (no threads here).
    """
    arrays = _panel_arrays(open_, high, low, close, volume_)
    if not len(rows):
        return np.empty((0, len(TECHNICAL_KEYS)))
    found = _compute_block(*arrays, keep=lambda series: series[rows, cols])
    return np.stack([found[key] for key in TECHNICAL_KEYS], axis=1)
