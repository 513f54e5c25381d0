"""Sandbox profiles: ``tidy`` keeps the original chains, ``realistic`` serves the real API's shapes."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from kapman.errors import ConfigError
from kapman.sandbox import profiles
from kapman.sandbox.__main__ import build_parser
from kapman.sandbox.market import Market
from kapman.sandbox.profiles import REALISTIC, TIDY, profile_named
from kapman.sandbox.rest import CLOCK_HEADER, SandboxRestServer


@pytest.fixture(scope="module")
def realistic() -> Market:
    return Market(seed=42, n_tickers=60, days=40, profile=REALISTIC)


@pytest.fixture(scope="module")
def tidy() -> Market:
    return Market(seed=42, n_tickers=60, days=40)


def test_profile_choice_by_name_environment_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)
    monkeypatch.setenv("KAPMAN_ENV_FILE", str(tmp_path / "no.env"))
    assert profile_named() is TIDY and profile_named("Realistic") is REALISTIC
    monkeypatch.setenv(profiles.ENV_VAR, "realistic")
    assert profile_named() is REALISTIC and profile_named("tidy") is TIDY
    with pytest.raises(ConfigError, match="unknown sandbox profile 'grim'"):
        profile_named("grim")
    with pytest.raises(AttributeError):
        TIDY.chain_quotes = False  # type: ignore[misc]
    args = build_parser().parse_args(["serve", "--profile", "realistic"])
    assert args.profile == "realistic"


def test_the_profile_is_read_from_env_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """.env.example lists KAPMAN_SANDBOX_PROFILE among the settings every entrypoint reads from .env; the
    sandbox read the process environment alone and served tidy."""
    env = tmp_path / ".env"
    env.write_text("KAPMAN_SANDBOX_PROFILE=realistic\n")
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)
    monkeypatch.setenv("KAPMAN_ENV_FILE", str(env))
    assert profile_named() is REALISTIC
    monkeypatch.setenv(profiles.ENV_VAR, "tidy")     # the environment wins over .env, as for every setting
    assert profile_named() is TIDY and profile_named("realistic") is REALISTIC


def test_tidy_chains_are_unchanged_by_the_profile_mechanism(tidy: Market) -> None:
    chain = tidy.option_chain("AAPL", tidy.now)
    assert all("last_quote" in r and "price" in r["underlying_asset"] for r in chain)
    assert all(type(r["details"]["strike_price"]) is float and "fmv" not in r for r in chain)
    assert max(r.get("implied_volatility", 0) for r in chain) <= 4.0
    assert not any(r.get("day") == {} or "last_trade" in r and not r["last_trade"] for r in chain)


def test_realistic_chains_have_the_real_apis_shapes(realistic: Market, tidy: Market) -> None:
    chain = realistic.option_chain("AAPL", realistic.now)
    same = tidy.option_chain("AAPL", tidy.now)
    assert len(chain) == len(same)  # the same contracts, differently shaped
    assert not any("last_quote" in r for r in chain)
    assert not any("price" in r["underlying_asset"] for r in chain)
    assert all(r["underlying_asset"]["ticker"] == "AAPL" for r in chain)
    assert all(isinstance(r["fmv"], float) and isinstance(r["fmv_last_updated"], int) for r in chain)
    strikes = [r["details"]["strike_price"] for r in chain]
    assert any(type(s) is int for s in strikes) and all(type(s) is int for s in strikes if float(s).is_integer())
    untraded = [r for r in chain if r["day"] == {}]
    assert untraded and all(r["last_trade"] == {} for r in untraded)
    assert any(r.get("greeks") == {} and "implied_volatility" not in r for r in chain)
    whole = [r for r in chain if r.get("greeks") and type(r["greeks"]["delta"]) is int]
    assert whole and all(r["greeks"] == {"delta": 1 if r["details"]["contract_type"] == "call" else -1,
                                         "gamma": 0, "theta": 0, "vega": 0} for r in whole)
    assert max(r.get("implied_volatility", 0) for r in chain) > 4


def test_every_response_names_the_sandbox_and_its_clock(realistic: Market) -> None:
    with SandboxRestServer(realistic, api_key="k") as server:
        request = urllib.request.Request(f"{server.base_url}/v3/snapshot/options/AAPL?limit=1",
                                         headers={"Authorization": "Bearer k"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers[CLOCK_HEADER] == "2025-12-19T21:00:00Z"
            body = json.loads(response.read())
    assert "last_quote" not in body["results"][0]


@pytest.mark.parametrize(("args", "said"), [
    (["serve", "--tickers", "0"], "argument --tickers: '0' is out of range; expected an integer in [1, 20000]"),
    (["serve", "--days", "-3"], "argument --days: '-3' is out of range; expected an integer in [1, 3650]"),
    (["serve", "--rest-port", "99999"],
     "argument --rest-port: '99999' is out of range; expected an integer in [0, 65535]"),
    (["serve", "--seed", "-1"], "argument --seed: '-1' is out of range; expected an integer in [0, 4294967295]"),
    (["write-mirror", "/nonexistent", "--tickers", "x"],
     "argument --tickers: 'x' is not an integer; expected an integer in [1, 20000]"),
])
def test_market_and_port_arguments_are_refused_by_the_parser(args: list[str], said: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """One usage line each, before any market is built (they were ValueErrors reported as bugs)."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(args)
    assert exited.value.code == 2 and capsys.readouterr().err.splitlines()[-1].endswith(f"error: {said}")


def test_a_place_the_sandbox_cannot_write_is_one_line_before_any_market_is_built(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """They were 'unexpected NotADirectoryError ... a bug in KapMan'."""
    from kapman import cli
    from kapman.sandbox.__main__ import main

    (tmp_path / "afile").write_text("")
    for args, said in [
        (["write-mirror", str(tmp_path / "afile"), "--tickers", "5", "--days", "5"],
         f"error: {tmp_path / 'afile'} is a file, not a directory"),
        (["serve", "--tickers", "5", "--days", "5", "--mirror-dir", str(tmp_path / "afile")],
         f"error: {tmp_path / 'afile'} is a file, not a directory"),
        (["serve", "--tickers", "5", "--days", "5", "--env-file", str(tmp_path / "afile" / "x.env")],
         f"error: cannot write {tmp_path / 'afile' / 'x.env'}: {tmp_path / 'afile'} is not a directory"),
    ]:
        assert cli.run_main(main, args) == 2
        assert capsys.readouterr().err.splitlines()[0] == said


def test_an_env_file_with_settings_the_sandbox_did_not_write_is_not_overwritten(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--env-file .env replaced the real settings (DATABASE_URL, the API keys) with the sandbox's."""
    from kapman import cli
    from kapman.sandbox.__main__ import ENV_FILE_HEADER, _written_by_the_sandbox, main

    settings = tmp_path / ".env"
    settings.write_text("DATABASE_URL=postgresql://kapman:secret@127.0.0.1:5432/kapman\nPOLYGON_API_KEY=real\n")
    assert cli.run_main(main, ["serve", "--tickers", "5", "--days", "5", "--env-file", str(settings)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: refusing to overwrite {settings}: it holds settings the sandbox did not write",
        "hint: name a file of the sandbox's own, e.g. --env-file .env.sandbox"]
    assert settings.read_text().startswith("DATABASE_URL=postgresql://kapman:secret@")   # untouched
    ours = tmp_path / ".env.sandbox"
    for text, mine in [("", True), (ENV_FILE_HEADER + "KAPMAN_NOW=2025-12-19T21:00:00Z\n", True),
                       # one written before the header: the sandbox's keys, its server on this machine
                       ("POLYGON_BASE_URL=http://127.0.0.1:8765\nPOLYGON_API_KEY=sandbox-key\n", True),
                       ("POLYGON_BASE_URL=https://api.massive.com\nPOLYGON_API_KEY=real\n", False),
                       ("POLYGON_BASE_URL=http://127.0.0.1:8765\nDATABASE_URL=postgresql://x\n", False)]:
        ours.write_text(text)
        assert _written_by_the_sandbox(ours) is mine, text
