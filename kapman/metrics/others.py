"""Return series: the ``others.*`` keys of the A2 surface (all in percent)."""

from __future__ import annotations

import numpy as np

from kapman.metrics import _rolling as r
from kapman.metrics._panel import Panel


def compute(p: Panel) -> dict[str, np.ndarray]:
    c, pc = p.close, p.prev_close
    ratio = r.safe_div(c, pc)
    with np.errstate(invalid="ignore", divide="ignore"):
        dlr = 100.0 * np.log(ratio)
    dlr[~(ratio > 0)] = np.nan
    # relative to the first non-NaN close of the window the caller passed (row 0 normally)
    cr = 100.0 * (r.safe_div(c, r.first_valid(c)[None, :]) - 1.0)
    return {
        "others.cr.cumulative_return": cr,
        "others.dlr.daily_log_return": dlr,
        "others.dr.daily_return": 100.0 * (ratio - 1.0),
    }
