"""Black-Scholes prices and greeks for the sandbox's option chains (no dividends).

Deliberately independent of ``kapman.metrics`` so the sandbox can check that code.  Greeks follow
the vendor's units: theta per calendar day (/365), vega per 1 volatility point (/100).
"""

from __future__ import annotations

import math

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)
#: Annual continuously-compounded risk-free rate used for every chain.
RISK_FREE_RATE = 0.04


def norm_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.asarray(_erf(np.asarray(x, dtype=np.float64) / math.sqrt(2.0)), dtype=np.float64))


def norm_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def price_and_greeks(
    is_call: np.ndarray,
    spot: float,
    strike: np.ndarray,
    t: np.ndarray,
    sigma: np.ndarray,
    r: float = RISK_FREE_RATE,
) -> dict[str, np.ndarray]:
    """Vectorised price, delta, gamma, theta (per day) and vega (per vol point)."""
    sqrt_t = np.sqrt(t)
    d1 = (np.log(spot / strike) + (r + 0.5 * sigma * sigma) * t) / (sigma * sqrt_t)
    d2 = d1 - sigma * sqrt_t
    discount = strike * np.exp(-r * t)
    pdf = norm_pdf(d1)
    call_price = spot * norm_cdf(d1) - discount * norm_cdf(d2)
    put_price = discount * norm_cdf(-d2) - spot * norm_cdf(-d1)
    decay = -spot * pdf * sigma / (2.0 * sqrt_t)
    return {
        "price": np.where(is_call, call_price, put_price),
        "delta": np.where(is_call, norm_cdf(d1), norm_cdf(d1) - 1.0),
        "gamma": pdf / (spot * sigma * sqrt_t),
        "theta": np.where(is_call, decay - r * discount * norm_cdf(d2), decay + r * discount * norm_cdf(-d2))
        / 365.0,
        "vega": spot * pdf * sqrt_t * 0.01,
    }
