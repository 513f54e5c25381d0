"""Time the A3 dealer-metric kernels on synthetic chains.

    venv/bin/python -m bench.bench_a3_kernels [--symbols 150] [--contracts 2000]

Builds one DataFrame per symbol (as the job does from its SQL result), then runs
``compute_dealer_metrics`` over all of them; prints the median of three runs and contracts/s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from kapman.metrics.dealer import DealerParams, compute_dealer_metrics
from kapman.metrics.greeks import bs_delta, bs_gamma, year_fraction

AS_OF = date(2025, 6, 13)
SNAPSHOT = datetime(2025, 6, 13, 19, 45, tzinfo=UTC)  # 15:45 New York
DTES = (0, 3, 7, 10, 14, 17, 21, 24, 28, 31, 35, 38, 42, 45, 49, 52, 56, 63, 77, 90)


def synthetic_chain(rng: np.random.Generator, contracts: int) -> tuple[pd.DataFrame, float]:
    """A chain of ``contracts`` rows: 20 expirations, strikes +/-30 % of spot, a skewed smile."""
    spot = float(np.exp(rng.uniform(np.log(5.0), np.log(600.0))))
    per_side = max(contracts // (2 * len(DTES)), 1)
    dte = np.repeat(np.array(DTES), 2 * per_side)
    strike = np.tile(np.repeat(np.round(spot * np.linspace(0.7, 1.3, per_side), 2), 2), len(DTES))
    is_call = np.tile(np.array([True, False]), per_side * len(DTES))
    expiration = np.datetime64(AS_OF, "D") + dte.astype("timedelta64[D]")
    moneyness = np.log(strike / spot)
    iv = 0.25 + 0.8 * moneyness**2 - 0.15 * moneyness + rng.normal(0.0, 0.01, dte.size)
    years = np.maximum(year_fraction(SNAPSHOT, expiration), 1.0 / 8760.0)
    gamma = bs_gamma(spot, strike, years, iv, 0.04)
    delta = bs_delta(spot, strike, years, iv, 0.04, 0.0, is_call)
    gamma[rng.random(dte.size) < 0.05] = np.nan  # provider greeks missing on a few contracts
    iv[rng.random(dte.size) < 0.01] = np.nan
    frame = pd.DataFrame({
        "contract_symbol": [f"O:X{i:06d}" for i in range(dte.size)],
        "expiration_date": [AS_OF + timedelta(days=int(d)) for d in dte],
        "strike": strike,
        "option_type": np.where(is_call, "C", "P"),
        "open_interest": np.floor(rng.lognormal(5.0, 1.5, dte.size)) * (rng.random(dte.size) > 0.05),
        "volume": np.floor(rng.lognormal(3.0, 1.5, dte.size)),
        "implied_volatility": iv,
        "delta": delta,
        "gamma": gamma,
        "theta": np.nan,
        "vega": np.nan,
        "shares_per_contract": 100,
    })
    return frame, spot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=150)
    parser.add_argument("--contracts", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(7)
    chains = [synthetic_chain(rng, args.contracts) for _ in range(args.symbols)]
    total = sum(len(frame) for frame, _ in chains)
    params = DealerParams()
    runs, cpu = [], []
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        statuses = [compute_dealer_metrics(frame, spot=spot, spot_source="snapshot", as_of=AS_OF,
                                           snapshot_time=SNAPSHOT, params=params)["status"]
                    for frame, spot in chains]
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    median = statistics.median(runs)
    print(f"symbols={args.symbols} contracts={total} statuses={sorted(set(statuses))}")
    # CPU time is the steadier figure on a shared machine; wall time is what the job budget counts.
    print(f"compute_dealer_metrics: {median:.3f} s wall (median of {args.repeat}; runs "
          f"{', '.join(f'{r:.3f}' for r in runs)}), {statistics.median(cpu):.3f} s CPU, "
          f"{total / median:,.0f} contracts/s, {median / args.symbols * 1e3:.2f} ms/symbol")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
