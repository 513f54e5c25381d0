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


@pytest.mark.parametrize("flag", ["--json", "-q"])
def test_json_and_quiet_keep_the_steps_output_out_of_the_summary(flag: str, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """--json printed every step's output before its JSON object, and -q printed it all too."""
    import json

    from kapman import runbook

    asked: dict[str, object] = {}

    def runbook_of(url: str, **options: object) -> list[runbook.StepRun]:
        asked.update(options)
        step = runbook.Step("5", "OHLCV base", "python -m scripts.ingest_ohlcv base")
        return [runbook.StepRun(step, 0, 1.0), runbook.StepRun(step, 1, 1.0)]

    monkeypatch.setattr(demo, "sandbox_runbook", runbook_of)
    monkeypatch.setattr(demo, "report", lambda url: [("tickers", "54 active of 54")])
    assert demo.main([flag, "--no-dashboards", "--db-url", "postgresql://nobody@127.0.0.1:1/kapman_demo"]) == 1
    out = capsys.readouterr().out
    assert asked["quiet"] is True
    if flag == "--json":
        found = json.loads(out)     # the whole of stdout is the one object
        assert (found["steps"], found["partial"]) == (2, 1)
    else:
        assert "demo database" not in out and out.splitlines()[-1] == "2 steps in 0s; 1 with partial failures"


def test_quiet_names_a_step_that_did_not_end_ok(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Quiet, a step's own output goes nowhere: the step and its command are named on stderr."""
    from kapman import runbook

    step = runbook.Step("5", "OHLCV base", "python -m scripts.ingest_ohlcv base")
    monkeypatch.setattr(runbook, "run_step", lambda s, env, url, *, quiet: runbook.StepRun(s, 1, 0.1))
    assert [r.returncode for r in demo._run_all([step], {}, "postgresql://nobody@127.0.0.1:1/x", True)] == [1]
    assert capsys.readouterr().err == "step 5 (OHLCV base) exited 1: python -m scripts.ingest_ohlcv base\n"
