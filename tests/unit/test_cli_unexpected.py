"""run_main: an exception nobody foresaw is one line, exit 2, JSON under --json; a traceback only
with --debug (or in the attached log file)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from kapman import cli
from kapman.clock import close_of


def broken(argv: Sequence[str] | None) -> int:
    close_of("2025-12-19")  # type: ignore[arg-type]  # a TypeError inside kapman.clock
    return 0


def test_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run_main(broken, []) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    first, hint = err.splitlines()
    assert first.startswith(f"error: {__name__}: unexpected TypeError in kapman.clock.close_of: ")
    cli.prog_override = "kapman status"
    try:
        assert cli.run_main(broken, []) == 2
    finally:
        cli.prog_override = None
    assert capsys.readouterr().err.startswith("error: kapman status: unexpected TypeError in kapman.clock.close_of: ")
    assert hint == "hint: rerun with --debug for the traceback; this is a bug in KapMan or an input it does not foresee"


def test_json_under_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run_main(broken, ["--json"]) == 2
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["status"] == "error" and data["exit_code"] == 2 and "unexpected TypeError" in data["error"]
    assert err == ""


def test_the_traceback_with_debug(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run_main(broken, ["--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "TypeError" in err


def test_the_traceback_in_the_log_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler = logging.FileHandler(tmp_path / "k.log")
    logging.getLogger().addHandler(handler)
    try:
        assert cli.run_main(broken, []) == 2
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"the traceback is in {tmp_path / 'k.log'}" in err
    assert "Traceback (most recent call last)" in (tmp_path / "k.log").read_text()


def test_secrets_in_the_message_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    def leaky(argv: Sequence[str] | None) -> int:
        raise RuntimeError("could not use postgresql://kap:hunter22@db/x")

    assert cli.run_main(leaky, []) == 2
    assert "hunter22" not in capsys.readouterr().err


@pytest.mark.parametrize("now", ["9999-12-31", "20251219"])
def test_a_bad_kapman_now_in_a_process_is_one_json_line(now: str) -> None:
    env = {**os.environ, "KAPMAN_NOW": now, "KAPMAN_ENV_FILE": "/nonexistent"}
    done = subprocess.run([sys.executable, "-m", "scripts.status", "--json"], env=env, capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    data = json.loads(done.stdout)
    assert data["error"].startswith(f"KAPMAN_NOW='{now}' (from the environment) is not YYYY-MM-DD")


def test_a_module_run_as_main_is_named_by_its_module(tmp_path: Path) -> None:
    """python -m scripts.x names itself scripts.x, not __main__."""
    script = tmp_path / "boom_cmd.py"
    script.write_text("from kapman import cli\n\ndef main(argv=None):\n    raise RuntimeError('boom')\n\n"
                      "if __name__ == '__main__':\n    cli.entrypoint(main)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{Path(__file__).resolve().parents[2]}"}
    done = subprocess.run([sys.executable, "-m", "boom_cmd"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.splitlines()[0] == "error: boom_cmd: unexpected RuntimeError: boom"


def test_an_error_line_for_a_reader_that_went_away_is_no_traceback(tmp_path: Path) -> None:
    """``kapman status --json | head`` without a database: the error's JSON line meets the closed
    pipe inside the error handler; it ended in a traceback."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAPMAN_ENV_FILE")}
    env["KAPMAN_ENV_FILE"] = str(tmp_path / "absent.env")     # no DATABASE_URL: an error line to write
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "scripts.status", "--json"], stdout=write, stderr=subprocess.PIPE,
                              text=True, env=env, timeout=60, cwd=Path(cli.__file__).resolve().parent.parent)
    finally:
        os.close(write)
    assert proc.returncode == cli.EXIT_BROKEN_PIPE == 141
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_a_broken_pipe_inside_main_is_not_reported_as_a_bug(capsys: pytest.CaptureFixture[str]) -> None:
    def writes_to_a_closed_pipe(argv: Sequence[str] | None) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    assert cli.run_main(writes_to_a_closed_pipe, []) == 141
    assert capsys.readouterr().err == ""
