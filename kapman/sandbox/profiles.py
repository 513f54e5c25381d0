"""Sandbox profiles: how close to the real API's rough shapes the offline market serves its data.

``tidy`` is the sandbox as it always was: every field present, floats everywhere, one shape per
record.  ``realistic`` serves what real plans and real data do: in the reference data class-suffix
tickers beside their upper-case namesakes (``AAp`` beside ``AAP``), commodity trusts typed ETV and
single-security ETFs typed ETS, records without ``cik`` or FIGIs, whole-second timestamps; in the
option chains the fields that depend on the plan missing, empty objects standing in for absent
ones, whole numbers as JSON integers.  The demo and the end-to-end test run on ``realistic``; most
tests keep ``tidy`` so their expectations stay simple.

Choose one with ``python -m kapman.sandbox serve --profile NAME`` or ``KAPMAN_SANDBOX_PROFILE``.
Each area of the market reads only its own fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapman.config import env_setting
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
    # ---- option chains (/v3/snapshot/options) ----------------------------------------------
    #: ``last_quote`` on every contract (a plan with quotes); without it bid and ask are unknown.
    chain_quotes: bool = True
    #: ``{}`` for ``day`` and ``last_trade`` of untraded contracts and for missing ``greeks``,
    #: instead of leaving the key out.
    chain_empty_objects: bool = False
    #: ``underlying_asset.price`` present (it depends on the stocks plan).
    chain_underlying_price: bool = True
    #: Whole strikes and greeks as JSON integers (``150``, ``"delta": 1``), as the API sends them.
    chain_integers: bool = False
    #: The implied-volatility ceiling of the smile; above 4 the far wings of short expiries exceed it.
    chain_iv_cap: float = 4.0
    #: ``fmv`` and ``fmv_last_updated`` on every contract (business plans).
    chain_fmv: bool = False


TIDY = Profile("tidy", "every field present, floats everywhere (the sandbox's original shapes)")
REALISTIC = Profile(
    "realistic",
    "shapes of real plans and data: class-suffix tickers (AAp beside AAP), ETV/ETS types, records without "
    "cik or FIGIs, whole-second timestamps; chains without last_quote or underlying price, {} objects, "
    "integer strikes and greeks, IV above 4, fmv",
    ticker_class_suffixes=True,
    ticker_etv_ets=True,
    ticker_sparse_ids=True,
    ticker_whole_seconds=True,
    chain_quotes=False,
    chain_empty_objects=True,
    chain_underlying_price=False,
    chain_integers=True,
    chain_iv_cap=8.0,
    chain_fmv=True,
)
PROFILES: dict[str, Profile] = {p.name: p for p in (TIDY, REALISTIC)}


def profile_named(name: str | None = None) -> Profile:
    """The named profile, else ``KAPMAN_SANDBOX_PROFILE`` (the environment, then ``.env``), else ``tidy``."""
    chosen = (name or env_setting(ENV_VAR) or DEFAULT).strip().lower()
    try:
        return PROFILES[chosen]
    except KeyError:
        raise ConfigError(
            f"unknown sandbox profile {chosen!r}", hint=f"choose one of {', '.join(PROFILES)}"
        ) from None
