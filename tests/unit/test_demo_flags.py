"""kapman demo takes --debug, as the README says every command does."""

from __future__ import annotations

import pytest

from kapman import demo


def test_demo_accepts_debug_and_shows_the_traceback(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KAPMAN_ENV_FILE", "/nonexistent")
    for name in ("POLYGON_API_KEY", "MASSIVE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert demo.main(["--live", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "\nerror: " in err
    assert demo.main(["--live"]) == 2
    assert "Traceback" not in capsys.readouterr().err
