"""Masking every way a URL can carry a password, and numeric settings validated with their range."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kapman import cli
from kapman.config import bounded, load_settings, mask_secrets_in, mask_url, unencoded_in_userinfo, url_password
from kapman.db.connect import connect, database_name
from kapman.errors import ConfigError
from scripts.db.a5_deterministic_rebuild import main as rebuild_main
from scripts.run_a3_dealer_metrics import main as a3_main


@pytest.mark.parametrize("url, masked, secret", [
    ("postgresql://secuser:pa/ss@rd/x@db:5432/kapman", "postgresql://secuser:***@db:5432/kapman", "ss@rd/x"),
    ("postgresql://u:a@b@h/d", "postgresql://u:***@h/d", "a@b"),
    ("postgresql://u:a:b:c@h/d", "postgresql://u:***@h/d", "b:c"),
    ("postgresql://u:p?q#r@h/d", "postgresql://u:***@h/d", "q#r"),
    ("postgresql://u:p%2Fw%40d@h/d", "postgresql://u:***@h/d", "p%2F"),
    ("postgresql://h/d?user=u&password=topsecret", "postgresql://h/d?user=u&password=***", "topsecret"),
    ("postgresql://h/d?PassWord=topsecret", "postgresql://h/d?PassWord=***", "topsecret"),
    ("postgresql://h/d?pass%77ord=topsecret", "postgresql://h/d?pass%77ord=***", "topsecret"),
    ("postgresql://h/d?sslpassword=keypass&sslmode=require", "postgresql://h/d?sslpassword=***&sslmode=require",
     "keypass"),
    ("host=db user=kapman password=hunter22 dbname=kapman", "host=db user=kapman password=*** dbname=kapman",
     "hunter22"),
    ("host=db password = 'two words' dbname=k", "host=db password = *** dbname=k", "two words"),
    ("postgresql://u:pw@h/d?password=other", "postgresql://u:***@h/d?password=***", "other"),
])
def test_mask_url_hides_every_password(url: str, masked: str, secret: str) -> None:
    assert mask_url(url) == masked
    assert secret not in mask_url(url)


def test_url_password_is_the_whole_password() -> None:
    assert url_password("postgresql://secuser:pa/ss@rd/x@db/k") == "pa/ss@rd/x"
    assert url_password("postgresql://u:p%40ss@h/d") == "p@ss"
    assert url_password("postgresql://u@h/d") is None


def test_settings_secrets_cover_an_unencoded_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://secuser:pa/ss@rd/x@db:5432/kapman")
    settings = load_settings(tmp_path / "none.env")
    assert "pa/ss@rd/x" in settings.secrets()
    assert "ss@rd" not in repr(settings)


def test_mask_secrets_in_free_text() -> None:
    text = "unrecognized arguments: --dburl postgresql://u:pa/ss@rd@h/d --x 'password=abc123'"
    out = mask_secrets_in(text)
    assert "pa/ss" not in out and "rd@h" not in out and "abc123" not in out
    assert "postgresql://u:***@h/d" in out


@pytest.mark.parametrize("argv", [
    ["--dburl", "postgresql://kapman:Sup3r/Secret@db:5432/kapman"],
    ["--iterations=postgresql://kapman:Sup3r/Secret@db:5432/kapman"],
    ["stray", "host=db password=Sup3r/Secret"],
    ["--iterations", "postgresql://kapman:Sup3r/Secret@db:5432/kapman"],
])
def test_usage_errors_never_echo_a_password(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    p = cli.parser("prog", "test", "  prog")
    p.add_argument("--iterations", type=int, default=1)
    with pytest.raises(SystemExit) as info:
        p.parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Sup3r" not in err and "Secret" not in err
    assert "error:" in err


def test_subcommand_parsers_mask_too(capsys: pytest.CaptureFixture[str]) -> None:
    p = cli.parser("prog", "test", "  prog")
    sub = p.add_subparsers(dest="cmd")
    sub.add_parser("go")
    with pytest.raises(SystemExit):
        p.parse_args(["go", "--dburl", "postgresql://u:Zq9/x@h/d"])
    assert "Zq9" not in capsys.readouterr().err


def test_rebuild_cli_masks_a_mistyped_url_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        rebuild_main(["--dburl", "postgresql://kapman:Sup3r/Secret@db:5432/kapman"])
    out = capsys.readouterr()
    assert info.value.code == 2
    assert "Sup3r" not in out.err + out.out and "Secret" not in out.err + out.out
    assert "unrecognized arguments" in out.err


@pytest.mark.parametrize("raw, problem", [
    ("nan", "'nan' is out of range; expected a number in [-0.1, 0.5]"),
    ("inf", "'inf' is out of range; expected a number in [-0.1, 0.5]"),
    ("0.9", "'0.9' is out of range; expected a number in [-0.1, 0.5]"),
    ("abc", "'abc' is not a number; expected a number in [-0.1, 0.5]"),
])
def test_bounded_flag_states_its_range(raw: str, problem: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        bounded(-0.1, 0.5)(raw)
    assert str(info.value) == problem


def test_bounded_integer_and_open_range() -> None:
    assert bounded(1, 64, integer=True)("6") == 6
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected an integer in \[1, 64\]"):
        bounded(1, 64, integer=True)("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"\(0, 1\]"):
        bounded(0, 1, low_open=True)("0")
    assert bounded(0, 1, low_open=True)("0.5") == 0.5


@pytest.mark.parametrize("flag, value, expected", [
    ("--risk-free-rate", "nan", "'nan' is out of range; expected a number in [-0.1, 0.5]"),
    ("--min-open-interest", "nan", "'nan' is out of range; expected a number in [0, 1000000000]"),
    ("--workers", "0", "'0' is out of range; expected an integer in [1, 64]"),
    ("--max-dte", "-1", "'-1' is out of range; expected an integer in [0, 3650]"),
    # as written, not as 309 digits of the float's integer value
    ("--risk-free-rate", "1e308", "'1e+308' is out of range; expected a number in [-0.1, 0.5]"),
    ("--min-open-interest", "2e9", "'2000000000' is out of range; expected a number in [0, 1000000000]"),
])
def test_a3_numeric_flags_state_their_range(flag: str, value: str, expected: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # The range is A3Params.validate()'s (the only validation), checked before any database is asked for.
    code = cli.run_main(a3_main, [flag, value])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"argument {flag}: {expected}" in err


def test_env_file_with_a_non_utf8_byte_names_file_and_line(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes(b"DATABASE_URL=postgresql://u@h/d\n# caf\xe9\nPOLYGON_API_KEY=x\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.message == f"{env}:2: not UTF-8 (byte 0xe9 at column 6)"


def test_env_file_non_utf8_through_a_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / ".env"
    env.write_bytes(b"\xff\xfeDATABASE_URL=x\n")
    monkeypatch.setenv("KAPMAN_ENV_FILE", str(env))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert cli.run_main(rebuild_main, []) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"error: {env}:1: not UTF-8 (byte 0xff at column 1)" in err


def test_env_file_line_that_is_not_an_assignment_names_file_and_line_not_its_text(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=postgresql://u@h/d\n# a comment\nexport POLYGON_API_KEY=ok\n"
                   "sk-live-4f9a secret pasted\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.message == f"{env}:4: not a KEY=value line"
    assert "sk-live" not in info.value.message + (info.value.hint or "")


def test_env_file_saved_with_a_byte_order_mark_reads_its_first_variable(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    env = tmp_path / ".env"
    env.write_bytes("\ufeffDATABASE_URL=postgresql://u@h/d\r\nPOLYGON_API_KEY=x\r\n".encode())
    settings = load_settings(env)
    assert (settings.database_url, settings.polygon_api_key) == ("postgresql://u@h/d", "x")


def test_kapman_home_that_is_not_a_directory_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kapman import config

    monkeypatch.setenv("KAPMAN_HOME", str(tmp_path / "nowhere"))
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path / "nowhere")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.message == f"KAPMAN_HOME={tmp_path / 'nowhere'} is not a directory"


def test_malformed_kapman_now_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", "yesterday")
    with pytest.raises(ConfigError, match=r"KAPMAN_NOW='yesterday' .* is not YYYY-MM-DD \(that day's 16:00 close"):
        load_settings(tmp_path / "none.env")



@pytest.mark.parametrize(("password", "char", "code"), [
    ("p@ss", "@", "%40"), ("ab/cd", "/", "%2F"), ("a?b", "?", "%3F"), ("s3cr#t", "#", "%23")])
def test_a_password_holding_a_delimiter_is_refused_before_libpq_can_print_its_tail(
        password: str, char: str, code: str) -> None:
    """libpq ends the password at '@' or '/' and reads the rest as the host: 'could not translate host
    name "ss@127.0.0.1"' printed part of the password."""
    url = f"postgresql://kapman:{password}@127.0.0.1:5432/kapman"
    assert unencoded_in_userinfo(url) == (char, code)
    with pytest.raises(ConfigError) as e:
        connect(url)
    assert e.value.message == (f"the user or password of postgresql://kapman:***@127.0.0.1:5432/kapman holds "
                               f"'{char}': a URL reads it as the end of the password")
    assert e.value.hint == f"percent-encode it as {code} in DATABASE_URL (or --db-url)"
    assert password not in e.value.message + str(e.value.hint)


@pytest.mark.parametrize("url", [
    "postgresql://kapman:s%40c%2Fr%3Ft%23@127.0.0.1:5432/kapman",
    "postgresql://kapman:pw@127.0.0.1:5432/kapman?application_name=a@b",
    "postgresql://kapman:pw@/kapman?host=/var/run/postgresql",
    "postgresql://kapman@127.0.0.1/kapman", "postgresql:///kapman"])
def test_encoded_or_plain_urls_pass(url: str) -> None:
    assert unencoded_in_userinfo(url) is None


def test_a_database_url_that_is_no_url_is_one_line_naming_the_setting() -> None:
    """An unclosed IPv6 bracket was 'unexpected ValueError in kapman.config.unencoded_in_userinfo ... a bug'."""
    with pytest.raises(ConfigError) as e:
        connect("postgresql://kapman:s3cret@[::1/kapman")
    assert e.value.message == "postgresql://kapman:***@[::1/kapman is not a URL (Invalid IPv6 URL)"
    assert e.value.hint == "use postgresql://user:password@host:port/database in DATABASE_URL (or --db-url)"
    assert "s3cret" not in e.value.message + str(e.value.hint) and e.value.exit_code == 2
    with pytest.raises(ConfigError) as named:  # the rebuild reads the name first
        database_name("postgresql://kapman:s3cret@[::1/kapman")
    assert named.value.message == e.value.message
