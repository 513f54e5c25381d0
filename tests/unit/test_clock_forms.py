"""One written form per kind of date or time: KAPMAN_NOW and every date/time flag."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from kapman import cli, clock


@pytest.mark.parametrize(("text", "instant"), [
    ("2025-12-19", datetime(2025, 12, 19, 21, 0, tzinfo=UTC)),            # the New York close
    ("2025-07-03", datetime(2025, 7, 3, 20, 0, tzinfo=UTC)),              # EDT
    ("2025-12-19T21:00:00Z", datetime(2025, 12, 19, 21, 0, tzinfo=UTC)),
    ("2025-12-19T16:00:00-05:00", datetime(2025, 12, 19, 21, 0, tzinfo=UTC)),
    ("2025-12-19T21:00:00.250+00:00", datetime(2025, 12, 19, 21, 0, 0, 250000, tzinfo=UTC)),
])
def test_the_accepted_forms(text: str, instant: datetime) -> None:
    assert clock.parse_instant(text) == instant


@pytest.mark.parametrize("text", [
    "20251219",              # used to mean midnight UTC
    "2025-12-19T21:00:00",   # a time without a zone used to mean UTC
    "2025-12-19 21:00",
    "9999-12-31",            # used to overflow into a traceback
    "0001-01-01T00:00:00Z",
    "2025-02-30",
    "yesterday",
    "",
])
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError) as info:
        clock.parse_instant(text)
    assert "YYYY-MM-DD (that day's 16:00 close in New York)" in str(info.value)
    assert "ISO 8601 time with its offset" in str(info.value)


def test_date_flags_take_only_yyyy_mm_dd() -> None:
    import argparse
    assert cli.day_arg("2025-12-19") == date(2025, 12, 19)
    for text in ("20251219", "2025-W51-5", "2025-12-19T00:00:00Z", "9999-12-31"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a date written YYYY-MM-DD"):
            cli.day_arg(text)


def test_kapman_now_out_of_form_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from kapman.config import load_settings
    from kapman.errors import ConfigError
    monkeypatch.setenv("KAPMAN_ENV_FILE", "/nonexistent")
    for value in ("9999-12-31", "20251219", "2025-12-19T21:00:00"):
        monkeypatch.setenv("KAPMAN_NOW", value)
        with pytest.raises(ConfigError, match=rf"^KAPMAN_NOW='{value}' \(from the environment\) is not YYYY-MM-DD"):
            load_settings()
