"""The OHLCV panel handed to every indicator family, with derived series computed once."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from kapman.metrics import _rolling as r


class Panel:
    """Five (T, N) float64 arrays plus lazily cached shared intermediates."""

    def __init__(self, open_, high, low, close, volume) -> None:
        arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (open_, high, low, close, volume)]
        shape = arrays[0].shape
        if len(shape) != 2 or any(a.shape != shape for a in arrays):
            raise ValueError(f"open/high/low/close/volume must share one (T, N) shape, got {shape}")
        self.open, self.high, self.low, self.close, self.volume = arrays
        self._ema: dict[int, np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return self.close.shape  # type: ignore[return-value]

    @cached_property
    def prev_close(self) -> np.ndarray:
        return r.shift(self.close)

    @cached_property
    def close_diff(self) -> np.ndarray:
        return r.diff(self.close)

    @cached_property
    def true_range(self) -> np.ndarray:
        return r.true_range(self.high, self.low, self.close)

    @cached_property
    def typical(self) -> np.ndarray:
        return (self.high + self.low + self.close) / 3.0

    @cached_property
    def median(self) -> np.ndarray:
        return (self.high + self.low) / 2.0

    @cached_property
    def close_windows(self) -> r.Windows:
        """Rolling sums of the close (SMAs, Bollinger variance) from one cumulative pass."""
        return r.Windows(self.close, squares=True)

    @cached_property
    def volume_windows(self) -> r.Windows:
        return r.Windows(self.volume)

    @cached_property
    def true_range_windows(self) -> r.Windows:
        return r.Windows(self.true_range)

    @cached_property
    def high_max(self) -> r.Extrema:
        return r.Extrema(self.high, "max")

    @cached_property
    def low_min(self) -> r.Extrema:
        return r.Extrema(self.low, "min")

    @cached_property
    def clv(self) -> np.ndarray:
        """Close location value ((C - L) - (H - C)) / (H - L); 0 on a zero-range bar (TA-Lib AD)."""
        rng = self.high - self.low
        with np.errstate(invalid="ignore", divide="ignore"):
            out = ((self.close - self.low) - (self.high - self.close)) / rng
        out[rng == 0] = 0.0
        return out

    def ema_close(self, n: int) -> np.ndarray:
        if n not in self._ema:
            self._ema[n] = r.ema(self.close, n)
        return self._ema[n]
