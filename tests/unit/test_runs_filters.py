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
