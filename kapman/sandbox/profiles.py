"""Sandbox profiles: how close to the real API's rough shapes the offline market serves its data.

``tidy`` is the sandbox as it always was: every field present, one shape per record.
``realistic`` serves what the real reference data does: class-suffix tickers beside their
upper-case namesakes (``AAp`` beside ``AAP``), commodity trusts typed ETV and single-security
ETFs typed ETS, records without ``cik`` or FIGIs, whole-second timestamps.  The demo and the
end-to-end test run on ``realistic``; most tests keep ``tidy`` so their expectations stay simple.

Choose one with ``python -m kapman.sandbox serve --profile NAME`` or ``KAPMAN_SANDBOX_PROFILE``.
Each area of the market reads only its own fields.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kapman.errors import ConfigError

ENV_VAR = "KAPMAN_SANDBOX_PROFILE"
DEFAULT = "tidy"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    # ---- reference data (/v3/reference/tickers) and the bars of its tickers -----------------
    #: Class-suffix tickers beside their upper-case namesakes (AAp and AAP, TpC and TPC), each
    #: with bars of its own, so both appear in one day file.
    ticker_class_suffixes: bool = False
    #: Commodity trusts typed ETV (GLD, SLV) and single-security ETFs typed ETS, as the live type
    #: list has them, instead of everything fund-like being ETF.
    ticker_etv_ets: bool = False
    #: Some records without ``cik``, ``composite_figi`` and ``share_class_figi`` (keys absent).
    ticker_sparse_ids: bool = False
    #: ``last_updated_utc``/``delisted_utc`` with whole seconds (``2024-06-21T00:00:00Z``) instead
    #: of nanoseconds.
    ticker_whole_seconds: bool = False


TIDY = Profile("tidy", "every field present (the sandbox's original shapes)")
REALISTIC = Profile(
    "realistic",
    "shapes of real data: class-suffix tickers (AAp beside AAP), ETV/ETS types, records without cik "
    "or FIGIs, whole-second timestamps",
    ticker_class_suffixes=True,
    ticker_etv_ets=True,
    ticker_sparse_ids=True,
    ticker_whole_seconds=True,
)
PROFILES: dict[str, Profile] = {p.name: p for p in (TIDY, REALISTIC)}


def profile_named(name: str | None = None) -> Profile:
    """The named profile, else ``KAPMAN_SANDBOX_PROFILE``, else ``tidy``."""
    chosen = (name or os.environ.get(ENV_VAR, "") or DEFAULT).strip().lower()
    try:
        return PROFILES[chosen]
    except KeyError:
        raise ConfigError(
            f"unknown sandbox profile {chosen!r}", hint=f"choose one of {', '.join(PROFILES)}"
        ) from None
