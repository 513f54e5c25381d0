"""Validation of /v3/reference/splits records."""

from __future__ import annotations

from datetime import date

import pytest

from kapman.ingest.splits import default_since, parse_split


def test_a_record_becomes_a_split() -> None:
    split = parse_split({"ticker": "NVDA", "execution_date": "2024-06-10", "split_from": 1, "split_to": 10,
                         "id": "E90a77bdf742661741ed7c8fc086415f0457c2816c45899d73aaa88bbc8b5f9b"})
    assert (split.ticker, split.execution_date, split.split_from, split.split_to) == ("NVDA", date(2024, 6, 10),
                                                                                       1.0, 10.0)
    assert split.key == ("NVDA", date(2024, 6, 10)) and split.vendor_id.startswith("E90a")  # type: ignore[union-attr]
    assert parse_split({"ticker": "BACpA", "execution_date": "2020-01-02", "split_from": 2, "split_to": 3}
                       ).ticker == "BACpA"   # case kept: tickers are case-sensitive


@pytest.mark.parametrize(("record", "field"), [
    ({"execution_date": "2024-06-10", "split_from": 1, "split_to": 10}, "ticker"),
    ({"ticker": "A B", "execution_date": "2024-06-10", "split_from": 1, "split_to": 10}, "ticker"),
    ({"ticker": "X", "execution_date": "2024-13-10", "split_from": 1, "split_to": 10}, "execution_date"),
    ({"ticker": "X", "execution_date": "2024-06-10", "split_from": 0, "split_to": 10}, "split_from"),
    ({"ticker": "X", "execution_date": "2024-06-10", "split_from": 1, "split_to": None}, "split_to"),
    ({"ticker": "X", "execution_date": "2024-06-10", "split_from": 1, "split_to": "10"}, "split_to"),
    ({"ticker": "X", "execution_date": "2024-06-10", "split_from": True, "split_to": 10}, "split_from"),
    ({"ticker": "X", "execution_date": "2024-06-10", "split_from": 1, "split_to": float("nan")}, "split_to"),
    ({"ticker": "X", "execution_date": "2024-06-10", "split_from": 1, "split_to": 1e308}, "split_to"),
    ({"ticker": "X", "execution_date": "2024-06-10", "split_from": float("inf"), "split_to": 2}, "split_from"),
    ({"ticker": "X\x00Y", "execution_date": "2024-06-10", "split_from": 1, "split_to": 2}, "ticker"),
    # found at the boundary: each was stored (True as the ticker "True"; a lone surrogate would have
    # failed the step's COPY) or ended the step (a record that is no object)
    ({"ticker": True, "execution_date": "2024-06-10", "split_from": 1, "split_to": 2}, "ticker"),
    ({"ticker": "AAPL\ud800", "execution_date": "2024-06-10", "split_from": 1, "split_to": 2}, "ticker"),
    ({"ticker": "X", "execution_date": "20240610", "split_from": 1, "split_to": 2}, "execution_date"),
    ({"ticker": "X", "execution_date": "9999-12-31", "split_from": 1, "split_to": 2}, "execution_date"),
    ({"ticker": "X", "execution_date": 20240610, "split_from": 1, "split_to": 2}, "execution_date"),
    ({"ticker": "X", "execution_date": "２０２４-06-10", "split_from": 1, "split_to": 2}, "execution_date"),
    ("NVDA", "not an object"),
    (None, "not an object"),
])
def test_a_bad_record_names_its_field(record: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        parse_split(record)


def test_the_default_range_is_the_retention_window() -> None:
    assert default_since(date(2025, 12, 19)) == date(2023, 12, 20)
