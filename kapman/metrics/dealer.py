"""Dealer-positioning metrics of one symbol on one trading date (the A3 job's kernel).

:func:`compute_dealer_metrics` turns one options snapshot into the JSON-ready payload stored in
``daily_snapshots.dealer_metrics_json``.  It is pure (no I/O, no clock) and vectorised across
contracts.  The conventions are listed in :data:`CONVENTIONS`, repeated in every payload, and
explained in ``docs/a3_dealer_metrics.md``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from kapman.errors import ConfigError
from kapman.metrics.dealer_chain import (
    FILTER_REASONS,
    OPEN_TO_CLOSE_HOURS,
    ChainArrays,
    Eligibility,
    classify,
)
from kapman.metrics.dealer_flip import GammaBook, find_gamma_flip
from kapman.metrics.dealer_levels import Wall, atm_iv, by_strike, max_pain, walls
from kapman.metrics.greeks import bs_delta, bs_gamma, year_fraction

SCHEMA_VERSION = 1

FULL, LIMITED, INVALID = "FULL", "LIMITED", "INVALID"

# Upper edges (calendar days, inclusive) of the GEX expiry buckets.
DTE_BUCKETS = ((0, 7), (8, 30), (31, 90))

CONVENTIONS: dict[str, str] = {
    "dealer_side": "dealers are long calls and short puts: sign +1 for calls, -1 for puts",
    "gex": "USD per 1% move of the underlying: sign * gamma * open_interest * multiplier * spot^2 * 0.01",
    "dex": "share-equivalent USD: sign * delta * open_interest * multiplier * spot",
    "greeks": "provider gamma/delta; Black-Scholes from the contract's IV when the provider gives none",
    "time_to_expiry": "snapshot instant to each contract's settlement: 16:00 America/New_York on "
                      "expiration (PM-settled), 09:30 for AM-settled index monthlies (roots SPX, NDX, RUT, "
                      "VIX, DJX); 365-day years, floored at min_time_to_expiry_hours",
    "dte": "calendar days from as_of to expiration",
    "gamma_flip": "spot level where re-priced Black-Scholes dealer gamma (own IV and expiry, "
                  "contracts with IV only) crosses zero, nearest to spot within flip_range",
    "open_interest": "as of the previous session's close",
    "position": "long_gamma / short_gamma when |gex_net / gex_gross| >= neutral_threshold, else neutral",
}


@dataclass(frozen=True, slots=True)
class DealerParams:
    """Tunable inputs of the dealer metrics; every field is echoed in the payload's ``params``."""

    #: Contracts expiring more than this many calendar days out carry little gamma.
    max_dte: int = 90
    #: Keep contracts with at least this open interest; 1 drops only positionless contracts.
    min_open_interest: float = 1.0
    #: Close to 3-month T-bill yields in 2024-25; gamma barely depends on it.
    risk_free_rate: float = 0.04
    #: No dividend data in the warehouse; 0 treats every underlying as non-paying.
    dividend_yield: float = 0.0
    #: Gamma-flip search range as a fraction of spot (0.2 = +/-20 %).
    flip_range: float = 0.20
    #: Coarse flip grid: 201 points over +/-20 % is a 0.2 %-of-spot step.
    grid_points: int = 201
    #: Fine points in the coarse cell holding the crossing: 0.2 % / 10 = 0.02 % of spot.
    refine_points: int = 10
    #: Per-strike profile covers strikes within this fraction of spot.
    profile_range: float = 0.20
    #: |gex_net / gex_gross| below this is "neutral": a 10 % net imbalance is noise.
    neutral_threshold: float = 0.10
    #: Fewer eligible contracts than this makes the status LIMITED.
    limited_below: int = 25
    #: ATM IV comes from the first expiration at least this far out (weeklies' IV is event-driven).
    atm_min_dte: int = 7
    #: Number of call and put walls listed.
    wall_count: int = 3
    #: A contract at or past its close is priced as if this much time remained, so 0DTE
    #: contracts in an after-close snapshot keep a finite gamma instead of NaN.
    min_time_to_expiry_hours: float = 1.0

    def validate(self) -> None:
        """The invariants the computation relies on (A3Params.validate() asks before a run)."""
        problems = []
        if self.max_dte < 0:
            problems.append("max_dte must be >= 0")
        if not 0.0 < self.flip_range < 1.0 or not 0.0 < self.profile_range < 1.0:
            problems.append("flip_range and profile_range must be in (0, 1)")
        if self.grid_points < 3 or self.refine_points < 1:
            problems.append("grid_points must be >= 3 and refine_points >= 1")
        if not 0.0 <= self.neutral_threshold < 1.0:
            problems.append("neutral_threshold must be in [0, 1)")
        if self.min_time_to_expiry_hours <= 0.0:
            problems.append("min_time_to_expiry_hours must be > 0")
        if problems:
            raise ConfigError("invalid dealer metric parameters: " + "; ".join(problems),
                              hint="fix the A3 dealer settings")


def _num(value: float | None, digits: int) -> float | None:
    """JSON-safe rounded float: NaN and infinities become None."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _money(value: float | None) -> float | None:
    return _num(value, 2)


def _wall_json(w: Wall) -> dict[str, float | None]:
    return {"strike": _num(w.strike, 4), "gex": _money(w.gex), "open_interest": _num(w.open_interest, 0),
            "distance_pct": _num(w.distance_pct, 3)}


def _buckets(params: DealerParams) -> list[tuple[str, int, int]]:
    """(name, first day, last day) of each DTE bucket; a "91+" bucket only when max_dte allows it."""
    named = [(f"{lo}-{hi}", lo, hi) for lo, hi in DTE_BUCKETS]
    last = DTE_BUCKETS[-1][1]
    if params.max_dte > last:
        named.append((f"{last + 1}+", last + 1, params.max_dte))
    return named


def _skeleton(*, as_of: date, snapshot_time: datetime | None, spot: float | None, spot_source: str,
              params: DealerParams, total: int) -> dict[str, Any]:
    """Every key of the payload, metrics all None: the INVALID payload and the FULL starting point."""
    return {
        "schema_version": SCHEMA_VERSION,
        "status": INVALID,
        "status_reason": None,
        "as_of": as_of.isoformat(),
        "snapshot_time": (snapshot_time.astimezone(UTC) if snapshot_time.tzinfo else
                          snapshot_time.replace(tzinfo=UTC)).isoformat() if snapshot_time else None,
        "spot": _num(spot, 4) if spot is not None else None,
        "spot_source": spot_source,
        "position": None,
        "gex_ratio": None,
        "gex_net": None,
        "gex_gross": None,
        "gex_by_dte": {name: None for name, _, _ in _buckets(params)},
        "gamma_flip": None,
        "gamma_flip_reason": None,
        "gamma_flip_distance_pct": None,
        "gamma_flip_crossings": None,
        "call_wall": None,
        "put_wall": None,
        "call_walls": [],
        "put_walls": [],
        "max_pain": None,
        "max_pain_expiration": None,
        "put_call_oi_ratio": None,
        "put_call_volume_ratio": None,
        "dex_net": None,
        "atm_iv": None,
        "atm_iv_expiration": None,
        "strike_profile": {"strikes": [], "gex": []},
        "counts": {"total": total, "eligible": 0, "excluded": dict.fromkeys(FILTER_REASONS, 0),
                   "calls": 0, "puts": 0, "expirations": 0, "gamma_from_iv": 0,
                   "flip_excluded_no_iv": 0, "dex_missing_delta": 0},
        "params": asdict(params),
        "conventions": CONVENTIONS,
    }


def _status(eligible: int, calls: int, puts: int, expirations: int,
            params: DealerParams) -> tuple[str, str | None]:
    """LIMITED for a small or one-sided/one-expiry chain; the reasons only ever add with less data."""
    reasons = []
    if eligible < params.limited_below:
        reasons.append(f"few_eligible_contracts: {eligible} < {params.limited_below}")
    if calls == 0 or puts == 0:
        reasons.append("one_sided_chain: " + ("no eligible calls" if calls == 0 else "no eligible puts"))
    if expirations < 2:
        reasons.append(f"single_expiration: {expirations} eligible expiration")
    return (LIMITED, "; ".join(reasons)) if reasons else (FULL, None)


def _ratio(num: float, den: float) -> float | None:
    return _num(num / den, 4) if den > 0.0 else None


def compute_dealer_metrics(chain: ChainArrays | pd.DataFrame, *, spot: float | None, spot_source: str,
                           as_of: date, snapshot_time: datetime | None,
                           params: DealerParams | None = None) -> dict[str, Any]:
    """Dealer metrics of one symbol's snapshot on trading date ``as_of``; see the module docstring.

    ``chain`` holds the contracts of the latest snapshot taken on ``as_of`` (a DataFrame with the
    columns of :mod:`kapman.metrics.dealer_chain`, or :class:`ChainArrays`); ``snapshot_time`` is
    that snapshot's instant (None: there is no snapshot).  ``spot`` and ``spot_source`` are chosen
    by the caller.  The result holds only str/int/float/bool/None, lists and dicts, never NaN.
    """
    params = params or DealerParams()
    arrays = chain if isinstance(chain, ChainArrays) else ChainArrays.from_frame(chain)
    out = _skeleton(as_of=as_of, snapshot_time=snapshot_time, spot=spot, spot_source=spot_source,
                    params=params, total=len(arrays))
    elig = classify(arrays, as_of=as_of, max_dte=params.max_dte, min_open_interest=params.min_open_interest)
    counts = out["counts"]
    counts["excluded"] = elig.excluded
    n_eligible = int(elig.eligible.sum())
    counts["eligible"] = n_eligible

    if snapshot_time is None:
        out["status_reason"] = "no_snapshot: no options snapshot on this date"
        return out
    if spot is None or not math.isfinite(spot) or spot <= 0.0:
        out["spot"] = None
        out["status_reason"] = "no_spot: neither the snapshot nor the daily bar gives a price"
        return out
    if n_eligible == 0:
        out["status_reason"] = f"no_eligible_contracts: 0 of {len(arrays)} pass the filters"
        return out
    _fill_metrics(out, arrays, elig, spot=float(spot), snapshot_time=snapshot_time, params=params)
    return out


def _fill_metrics(out: dict[str, Any], a: ChainArrays, elig: Eligibility, *, spot: float,
                  snapshot_time: datetime, params: DealerParams) -> None:
    e = elig.eligible
    r, q = params.risk_free_rate, params.dividend_yield
    strike, is_call, dte = a.strike[e], a.is_call[e], elig.dte[e]
    iv = a.implied_volatility[e]
    has_iv = elig.has_iv[e]
    floor = params.min_time_to_expiry_hours / (365.0 * 24.0)
    years = year_fraction(snapshot_time, a.expiration[e])
    if a.settles_at_open is not None:   # AM-settled index monthlies stop 6.5 hours earlier
        years = years - a.settles_at_open[e] * (OPEN_TO_CLOSE_HOURS / (365.0 * 24.0))
    years = np.maximum(years, floor)

    # Provider greeks first; Black-Scholes from IV only where the provider gave none.
    gamma = a.gamma[e]
    need_gamma = ~np.isfinite(gamma)
    if need_gamma.any():
        gamma = gamma.copy()
        gamma[need_gamma] = bs_gamma(spot, strike[need_gamma], years[need_gamma], iv[need_gamma], r, q)
    delta = a.delta[e]
    need_delta = ~np.isfinite(delta) & has_iv
    if need_delta.any():
        delta = delta.copy()
        delta[need_delta] = bs_delta(spot, strike[need_delta], years[need_delta], iv[need_delta], r, q,
                                     is_call[need_delta])
    has_delta = np.isfinite(delta)

    sign = np.where(is_call, 1.0, -1.0)
    weight = sign * a.open_interest[e] * a.multiplier[e]
    gex = weight * gamma * spot * spot * 0.01
    gex_net, gex_gross = float(gex.sum()), float(np.abs(gex).sum())

    counts = out["counts"]
    n_calls = int(is_call.sum())
    n_exp = int(np.unique(a.expiration[e]).size)
    counts.update(calls=n_calls, puts=int(e.sum()) - n_calls, expirations=n_exp,
                  gamma_from_iv=int(need_gamma.sum()), flip_excluded_no_iv=int((~has_iv).sum()),
                  dex_missing_delta=int((~has_delta).sum()))
    out["status"], out["status_reason"] = _status(int(e.sum()), n_calls, counts["puts"], n_exp, params)

    out["gex_net"], out["gex_gross"] = _money(gex_net), _money(gex_gross)
    if gex_gross > 0.0:
        ratio = gex_net / gex_gross
        out["gex_ratio"] = _num(ratio, 4)
        out["position"] = ("neutral" if abs(ratio) < params.neutral_threshold
                           else "long_gamma" if ratio > 0 else "short_gamma")
    for name, first, last in _buckets(params):
        in_bucket = (dte >= first) & (dte <= last)
        out["gex_by_dte"][name] = {"net": _money(float(gex[in_bucket].sum())),
                                   "gross": _money(float(np.abs(gex[in_bucket]).sum())),
                                   "contracts": int(in_bucket.sum())}
    out["dex_net"] = _money(float((weight * delta * spot)[has_delta].sum()))

    near = np.abs(strike - spot) <= params.profile_range * spot
    profile = by_strike(strike[near], gex[near])
    out["strike_profile"] = {"strikes": [_num(k, 4) for k in profile.strikes.tolist()],
                             "gex": [_money(g) for g in profile.totals[0].tolist()]}

    oi = a.open_interest[e]
    call_walls = walls(strike[is_call], gex[is_call], oi[is_call], spot, params.wall_count)
    put_walls = walls(strike[~is_call], gex[~is_call], oi[~is_call], spot, params.wall_count)
    out["call_walls"] = [_wall_json(w) for w in call_walls]
    out["put_walls"] = [_wall_json(w) for w in put_walls]
    out["call_wall"] = out["call_walls"][0]["strike"] if call_walls else None
    out["put_wall"] = out["put_walls"][0]["strike"] if put_walls else None

    book = GammaBook.build(spot, strike[has_iv], years[has_iv], iv[has_iv], weight[has_iv], r, q)
    flip = find_gamma_flip(book, flip_range=params.flip_range, grid_points=params.grid_points,
                           refine_points=params.refine_points)
    out["gamma_flip"] = _num(flip.level, 4)
    out["gamma_flip_reason"] = flip.reason
    out["gamma_flip_crossings"] = flip.crossings
    if flip.level is not None:
        out["gamma_flip_distance_pct"] = _num((flip.level - spot) / spot * 100.0, 3)

    _fill_chain_wide(out, a, elig, spot=spot, params=params)


def _fill_chain_wide(out: dict[str, Any], a: ChainArrays, elig: Eligibility, *, spot: float,
                     params: DealerParams) -> None:
    """Metrics over the whole unexpired chain within max_dte, whatever the gamma or OI filters say."""
    u = elig.universe
    calls, puts = u & a.is_call, u & a.is_put
    out["put_call_oi_ratio"] = _ratio(float(a.open_interest[puts].sum()), float(a.open_interest[calls].sum()))
    out["put_call_volume_ratio"] = _ratio(float(a.volume[puts].sum()), float(a.volume[calls].sum()))

    pain = max_pain(a.expiration[u], a.strike[u], a.is_call[u], a.open_interest[u], a.multiplier[u])
    if pain is not None:
        out["max_pain"] = _num(pain.strike, 4)
        out["max_pain_expiration"] = str(pain.expiration)

    w = u & elig.has_iv
    level, exp_date = atm_iv(elig.dte[w], a.expiration[w], a.strike[w], a.is_call[w],
                             a.implied_volatility[w], spot, params.atm_min_dte)
    out["atm_iv"] = _num(level, 6)
    out["atm_iv_expiration"] = str(exp_date) if exp_date is not None else None
