"""kapman runs --step / --status: an empty filter is refused, not read as one that matches nothing."""

from __future__ import annotations

import pytest

from kapman.console import main

NOWHERE = "postgresql://nobody@127.0.0.1:1/none"


@pytest.mark.parametrize(("flag", "value"), [("--step", ""), ("--step", " , "), ("--status", "")])
def test_an_empty_filter_is_refused(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    # it listed nothing and said "no runs recorded", exit 0, as if the ledger were empty
    assert main(["runs", flag, value, "--db-url", NOWHERE]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [f"error: {flag} is empty",
                                              f"hint: name one or more, or leave {flag} out for all"]


def test_the_table_shows_seconds_to_a_tenth() -> None:
    from kapman.views.runs import COLUMNS, shown
    from kapman.views.table import table_text

    rows = [{"started_at": None, "step": "a3", "status": "ok", "seconds": 1.63045, "clock": None, "outcome": ""},
            {"started_at": None, "step": "a2", "status": "ok", "seconds": 0.197698, "clock": None, "outcome": ""},
            {"started_at": None, "step": "a2", "status": "running", "seconds": None, "clock": None, "outcome": ""}]
    assert [line.split()[2:] for line in table_text(shown(rows), COLUMNS).splitlines()[1:]] == [
        ["1.6"], ["0.2"], []]


def test_a_limit_beyond_what_sql_takes_means_all() -> None:
    from kapman.cli import count_arg

    # runs --limit 99999999999999999999 failed in the database: 'bigint out of range'
    assert count_arg("99999999999999999999") == 2**63 - 1 and count_arg("20") == 20
