"""demo and sandbox take the common flags the README lists (--db-url -v -q --json --debug); --version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kapman import __version__
from kapman.console import main


@pytest.mark.parametrize("command", [["demo"], ["sandbox", "serve"], ["sandbox", "write-mirror"]])
def test_the_common_flags_are_in_the_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    for flag in ("--db-url URL", "--json", "-v, --verbose", "-q, --quiet", "--debug"):
        assert flag in out, (command, flag)


def test_sandbox_write_mirror_takes_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sandbox", "write-mirror", str(tmp_path), "--tickers", "50", "--days", "10", "--json", "-q",
                 "--db-url", "postgresql://nobody@127.0.0.1:1/none", "--debug"])
    found = json.loads(capsys.readouterr().out)
    assert code == 0 and found == {"files": len(list(tmp_path.rglob("*.csv.gz"))), "directory": str(tmp_path)}
    assert found["files"] > 0


def test_sandbox_takes_them_before_its_subcommand_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """As ohlcv does: ``kapman sandbox -q write-mirror`` was 'unrecognized arguments: -q'."""
    code = main(["sandbox", "--json", "-q", "--db-url", "postgresql://nobody@127.0.0.1:1/none", "write-mirror",
                 str(tmp_path), "--tickers", "50", "--days", "10"])
    found = json.loads(capsys.readouterr().out)
    assert code == 0 and found == {"files": len(list(tmp_path.rglob("*.csv.gz"))), "directory": str(tmp_path)}
    assert main(["sandbox", "--json", "write-mirror", str(tmp_path / "b"), "--tickers", "50", "--days", "10",
                 "--verbose"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == found["files"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"kapman {__version__}\n"


@pytest.mark.parametrize("command", [["sandbox", "serve"], ["sandbox", "write-mirror", "/nonexistent"]])
def test_sandbox_usage_errors_mask_a_url_and_take_no_abbreviation(command: list[str],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """As every command's parser: a mistyped --dburl printed its password, and --tick was read as --tickers."""
    with pytest.raises(SystemExit) as done:
        main([*command, "--dburl", "postgresql://u:hunter2@127.0.0.1:1/none"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "hunter2" not in err
    assert err.splitlines()[-1] == "kapman sandbox: error: unrecognized arguments: --dburl postgresql://u:***@127.0.0.1:1/none"
    with pytest.raises(SystemExit) as done:
        main([*command, "--tick", "5"])
    assert done.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "kapman sandbox: error: unrecognized arguments: --tick 5"


@pytest.mark.parametrize(("command", "error"), [
    (["status", "--json", "--bogus"], "kapman status: unrecognized arguments: --bogus"),
    (["ohlcv", "base", "--json", "--days", "x"], "kapman ohlcv base: argument --days: invalid int value: 'x'"),
    (["status", "--json", "--dburl", "postgresql://u:hunter2@h/d"],
     "kapman status: unrecognized arguments: --dburl postgresql://u:***@h/d"),
])
def test_a_usage_error_under_json_is_one_json_object_on_stdout(command: list[str], error: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A script reading --json's stdout got nothing from a usage error, only argparse's text on stderr."""
    with pytest.raises(SystemExit) as done:
        main(command)
    out, err = capsys.readouterr()
    assert done.value.code == 2 and json.loads(out) == {"status": "error", "error": error, "hint": "see --help",
                                                        "exit_code": 2}
    assert err.splitlines()[-1].endswith(error.split(": ", 1)[1]) and "hunter2" not in out + err


@pytest.mark.parametrize("command", [["a2", "--db-url", ""], ["rebuild", "--db-url", " "], ["runs", "--db-url", ""],
                                     ["ohlcv", "--db-url", "", "base"], ["ohlcv", "base", "--db-url", ""]])
def test_an_empty_db_url_is_refused_not_taken_for_database_url(command: list[str], monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``--db-url "$TARGET"`` with TARGET unset ran the command on DATABASE_URL's warehouse (.env's)."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/the_env_warehouse")
    with pytest.raises(SystemExit) as done:
        main(command)
    assert done.value.code == 2 and capsys.readouterr().err.splitlines()[-1].endswith(
        "error: argument --db-url: is empty; name a database URL, or leave --db-url out for DATABASE_URL")


@pytest.mark.parametrize(("command", "error"), [
    (["a2", "--symbols", "AAPL", "--symbols", "MSFT"],
     "kapman a2: error: argument --symbols: given twice (AAPL, then MSFT)"),
    (["a3", "--date", "2025-12-18", "--date", "2025-12-19"],
     "kapman a3: error: argument --date: given twice (2025-12-18, then 2025-12-19)"),
    (["options", "--symbols", "AAPL", "--symbols", "SPY"],
     "kapman options: error: argument --symbols: given twice (AAPL, then SPY)"),
    (["ohlcv", "backfill", "--start", "2025-12-01", "--start-date", "2025-12-02", "--end", "2025-12-03"],
     "kapman ohlcv backfill: error: argument --start-date/--start: given twice (2025-12-01, then 2025-12-02)"),
    (["restore-options", "--end-date", "2025-12-18", "--end-date", "2025-12-19"],
     "kapman restore-options: error: argument --end-date: given twice (2025-12-18, then 2025-12-19)"),
    (["report", "AAPL", "--date", "2025-12-19", "--date", "2025-12-18"],
     "kapman report: error: argument --date: given twice (2025-12-19, then 2025-12-18)"),
    (["show", "AAPL", "--date", "2025-12-19", "--date", "2025-12-18"],
     "kapman show: error: argument --date: given twice (2025-12-19, then 2025-12-18)"),
    (["screen", "rsi < 30", "--date", "2025-12-19", "--date", "2025-12-18"],
     "kapman screen: error: argument --date: given twice (2025-12-19, then 2025-12-18)"),
    (["ohlcv", "base", "--as-of", "2025-12-19", "--as-of", "2025-12-18"],
     "kapman ohlcv base: error: argument --as-of: given twice (2025-12-19, then 2025-12-18)"),
    (["splits", "--since", "2025-12-01", "--since", "2025-11-01"],
     "kapman splits: error: argument --since: given twice (2025-12-01, then 2025-11-01)"),
    (["watchlists", "--effective-date", "2025-12-01", "--effective-date", "2025-12-02"],
     "kapman watchlists: error: argument --effective-date: given twice (2025-12-01, then 2025-12-02)"),
])
def test_symbols_and_dates_given_twice_are_refused(command: list[str], error: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The last one silently won: ``--symbols AAPL --symbols MSFT`` computed MSFT alone."""
    with pytest.raises(SystemExit) as done:   # before any database is asked
        main([*command, "--db-url", "postgresql://nobody@127.0.0.1:1/none"])
    assert done.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == f"{error}; give it once"


def test_other_options_keep_the_last_value_given() -> None:
    """A wrapper's defaults (``alias a2='kapman a2 --workers 2'``) can be overridden after them."""
    from kapman.commands import ohlcv

    args = ohlcv.build_parser().parse_args(["--workers", "2", "--workers", "3", "incremental", "--recheck-days", "1",
                                            "--recheck-days", "2"])
    assert (args.workers, args.recheck_days) == (3, 2)
