"""kapman screen --columns: the names EXPR may use, as text or --json."""

from __future__ import annotations

import json

import pytest

from kapman.console import main
from kapman.data import describe


def test_screen_columns_with_json_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    """It printed the text listing under --json; no database is asked."""
    assert main(["screen", "--columns", "--json", "--db-url", "postgresql://nobody@127.0.0.1:1/none"]) == 0
    listed = json.loads(capsys.readouterr().out)["columns"]
    assert listed == describe() and len(listed) > 100
    assert {"name": "momentum.rsi.rsi", "short": "rsi", "family": "a2", "type": "double"} in listed
    assert main(["screen", "--columns"]) == 0
    assert "momentum.rsi.rsi  (rsi)  double" in capsys.readouterr().out.splitlines()
