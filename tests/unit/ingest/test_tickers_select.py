"""What the reference records make of the universe: case kept, types, the survivorship window."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from kapman import cli
from kapman.errors import ConfigError, UsageError
from kapman.ids import TICKER_NAMESPACE, ticker_id
from kapman.ingest.tickers import select
from kapman.ticker_types import DEFAULT_TYPES, parse_types

SINCE = datetime(2023, 12, 20, tzinfo=UTC)


def rec(ticker: str, kind: str = "CS", updated: str = "2025-12-19T06:05:00Z", **extra: object) -> dict:
    return {"ticker": ticker, "type": kind, "last_updated_utc": updated, "name": ticker, **extra}


def test_ticker_ids_keep_case_and_upper_case_ids_are_unchanged() -> None:
    # The id every upper-case symbol has always had: uuid5 of the symbol.
    assert ticker_id("AAPL") == uuid.uuid5(TICKER_NAMESPACE, "AAPL")
    assert str(ticker_id("AAPL")) == str(uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_DNS, "kapman.tickers"), "AAPL"))
    assert ticker_id("AAp") != ticker_id("AAP") and ticker_id("TpC") != ticker_id("TPC")
    assert ticker_id("AAp") == ticker_id("AAp")


def test_a_newer_class_suffix_record_does_not_replace_its_upper_case_namesake() -> None:
    chosen = select([rec("TPC", updated="2024-01-01T00:00:00Z"), rec("TpC", "PFD", updated="2025-06-21T00:00:00Z"),
                     rec("AAP"), rec("AAp", "PFD")], [], DEFAULT_TYPES, SINCE)
    assert sorted(chosen.kept) == ["AAP", "AAp", "TPC", "TpC"]
    assert chosen.kept["TPC"]["type"] == "CS" and chosen.kept["TpC"]["type"] == "PFD"
    assert chosen.duplicates == 0


def test_latest_record_wins_within_one_exact_symbol() -> None:
    chosen = select([rec("XYZ", cik="1", updated="2024-01-01T00:00:00Z"), rec("XYZ", cik="2")], [],
                    DEFAULT_TYPES, SINCE)
    assert chosen.kept["XYZ"]["cik"] == "2" and chosen.duplicates == 1


def test_default_types_include_etv_and_ets_and_exclusions_are_counted_by_type() -> None:
    assert {"CS", "ETF", "ETV", "ETS", "ETN", "PFD", "ADRC"} <= set(DEFAULT_TYPES)
    chosen = select([rec("GLD", "ETV"), rec("TSLL", "ETS"), rec("ABCW", "WARRANT"), rec("ABCR", "RIGHT"),
                     rec("ABDW", "WARRANT"), rec("SPY", "ETF")], [], DEFAULT_TYPES, SINCE)
    assert sorted(chosen.kept) == ["GLD", "SPY", "TSLL"]
    assert chosen.excluded_by_type == {"WARRANT": 2, "RIGHT": 1}


def test_delisted_within_the_window_are_kept_inactive_older_ones_left_out() -> None:
    chosen = select([rec("AAPL"), rec("REUSE")],
                    [rec("GONE", delisted_utc="2024-05-01T00:00:00Z", active=False),
                     rec("OLD", delisted_utc="2023-01-01T00:00:00Z", active=False),
                     rec("NODATE", active=False),
                     rec("REUSE", delisted_utc="2024-05-01T00:00:00Z", active=False),
                     rec("GONEW", "WARRANT", delisted_utc="2024-05-01T00:00:00Z", active=False)],
                    DEFAULT_TYPES, SINCE)
    assert chosen.kept["GONE"]["active"] is False and chosen.kept["AAPL"]["active"] is True
    assert chosen.kept["REUSE"]["active"] is True          # a reused ticker is the listed one
    assert "OLD" not in chosen.kept and "NODATE" not in chosen.kept
    assert (chosen.delisted_kept, chosen.delisted_outside_window) == (1, 2)
    assert chosen.excluded_by_type == {"WARRANT": 1}
    assert chosen.listed == {"AAPL", "REUSE"}


def test_invalid_symbols_are_counted_not_folded() -> None:
    chosen = select([rec(""), rec("A B"), rec("ıBM"), rec("X" * 21), rec(" MSFT ")], [], DEFAULT_TYPES, SINCE)
    assert list(chosen.kept) == ["MSFT"] and chosen.invalid == 4


def test_parse_types() -> None:
    assert parse_types(" cs, ETV ,ets,CS", source="--types") == ("CS", "ETV", "ETS")
    with pytest.raises(ConfigError, match=r"KAPMAN_TICKER_TYPES: unknown security type 'ETFF'"):
        parse_types("CS,ETFF", source="KAPMAN_TICKER_TYPES")
    with pytest.raises(ConfigError, match="no security type given"):
        parse_types(" , ", source="--types")
    with pytest.raises(ConfigError, match="unknown security type"):
        parse_types("ＣS", source="--types")


def test_ticker_types_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from kapman.config import load_settings

    monkeypatch.setenv("KAPMAN_ENV_FILE", "/nonexistent")
    monkeypatch.delenv("KAPMAN_TICKER_TYPES", raising=False)
    assert load_settings().ticker_types == DEFAULT_TYPES
    monkeypatch.setenv("KAPMAN_TICKER_TYPES", "CS,ETV")
    assert load_settings().ticker_types == ("CS", "ETV")
    monkeypatch.setenv("KAPMAN_TICKER_TYPES", "CS,NOPE")
    with pytest.raises(ConfigError, match="KAPMAN_TICKER_TYPES: unknown security type 'NOPE'"):
        load_settings()


def test_symbols_arg_keeps_case() -> None:
    assert cli.symbols_arg("AAPL, AAp,BRK.B,AAPL,") == ["AAPL", "AAp", "BRK.B"]
    assert cli.symbols_arg(None) is None
    with pytest.raises(UsageError, match=r"--symbols: not a ticker symbol: '\$TSLA' 'ıbm'"):
        cli.symbols_arg("AAPL,$TSLA,ıbm")
    for empty in ("", " , ,"):   # an empty variable in a script is refused, not read as every symbol
        with pytest.raises(UsageError, match="^--symbols is empty$"):
            cli.symbols_arg(empty)
