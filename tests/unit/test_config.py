from __future__ import annotations

import re
from pathlib import Path

import pytest

from kapman.config import load_settings, mask_url
from kapman.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "POLYGON_API_KEY", "MASSIVE_API_KEY", "POLYGON_BASE_URL",
                 "POLYGON_RATE_LIMIT", "FLATFILES_MIRROR_DIR", "FLATFILES_SECRET_ACCESS_KEY",
                 "POLYGON_MAX_RETRIES", "KAPMAN_ENV_FILE", "POLYGON_READ_TIMEOUT", "POLYGON_CONNECT_TIMEOUT",
                 "POLYGON_REQUEST_DEADLINE", "OPTIONS_RUN_DEADLINE", "FLATFILES_ENDPOINT",
                 "KAPMAN_ARCHIVE_ENDPOINT", "FLATFILES_BUCKET"):
        monkeypatch.delenv(name, raising=False)


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text)
    return path


def test_env_file_is_read(tmp_path: Path) -> None:
    env = write_env(tmp_path, "DATABASE_URL=postgresql://u:pw@h:1/db\nPOLYGON_API_KEY=abc123\n")
    s = load_settings(env)
    assert s.database_url == "postgresql://u:pw@h:1/db"
    assert s.polygon_api_key == "abc123"


def test_environment_wins_over_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = write_env(tmp_path, "DATABASE_URL=postgresql://file@h/db\n")
    monkeypatch.setenv("DATABASE_URL", "postgresql://env@h/db")
    assert load_settings(env).database_url == "postgresql://env@h/db"


def test_explicit_db_url_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://env@h/db")
    s = load_settings(tmp_path / "missing.env", database_url="postgresql://cli@h/db")
    assert s.database_url == "postgresql://cli@h/db"


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(tmp_path / "missing.env")
    assert s.database_url is None
    assert s.polygon_base_url == "https://api.massive.com"
    assert s.flatfiles_bucket == "flatfiles"
    assert s.flatfiles_stocks_prefix == "us_stocks_sip/day_aggs_v1"
    assert s.flatfiles_mirror_dir is None


def test_massive_key_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASSIVE_API_KEY", "k")
    assert load_settings(tmp_path / "x").polygon_api_key == "k"


def test_missing_database_url_error_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "x").require_database_url()
    assert "DATABASE_URL is not set" in info.value.message
    assert ".env.example" in (info.value.hint or "")


@pytest.mark.parametrize("raw", ["abc", "-1", "0"])
def test_invalid_rate_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("POLYGON_RATE_LIMIT", raw)
    with pytest.raises(ConfigError, match="POLYGON_RATE_LIMIT"):
        load_settings(tmp_path / "x")


@pytest.mark.parametrize(("name", "raw", "message"), [
    ("POLYGON_RATE_LIMIT", "nan", "'nan' is out of range; expected a number in [0.05, 1000]"),
    ("POLYGON_RATE_LIMIT", "0.0001", "'0.0001' is out of range; expected a number in [0.05, 1000]"),
    ("POLYGON_RATE_LIMIT", "inf", "'inf' is out of range; expected a number in [0.05, 1000]"),
    ("POLYGON_READ_TIMEOUT", "nan", "'nan' is out of range; expected a number in [0.1, 600]"),
    ("POLYGON_READ_TIMEOUT", "inf", "'inf' is out of range; expected a number in [0.1, 600]"),
    ("POLYGON_CONNECT_TIMEOUT", "-3", "'-3' is out of range; expected a number in [0.1, 600]"),
    ("POLYGON_MAX_RETRIES", "2.5", "'2.5' is not an integer; expected an integer in [0, 20]"),
    ("POLYGON_MAX_RETRIES", "1000", "'1000' is out of range; expected an integer in [0, 20]"),
    ("POLYGON_REQUEST_DEADLINE", "0", "'0' is out of range; expected a number in [1, 3600]"),
    ("OPTIONS_RUN_DEADLINE", "1e9", "'1e9' is out of range; expected a number in [10, 86400]"),
])
def test_numeric_settings_are_refused_outside_their_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, raw: str, message: str
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "x")
    assert info.value.message == f"{name}={message}"
    assert name in (info.value.hint or "")


def test_numeric_settings_in_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, raw in (("POLYGON_RATE_LIMIT", "0.083"), ("POLYGON_READ_TIMEOUT", "600"), ("POLYGON_MAX_RETRIES", "0"),
                      ("POLYGON_REQUEST_DEADLINE", "5"), ("OPTIONS_RUN_DEADLINE", "60")):
        monkeypatch.setenv(name, raw)
    s = load_settings(tmp_path / "x")
    assert (s.polygon_rate_limit, s.polygon_read_timeout, s.polygon_max_retries) == (0.083, 600.0, 0)
    assert (s.polygon_request_deadline, s.options_run_deadline) == (5.0, 60.0)


def test_base_url_with_path_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYGON_BASE_URL", "https://api.massive.com/v3")
    with pytest.raises(ConfigError, match="no path"):
        load_settings(tmp_path / "x")


def test_repr_masks_every_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://kapman:hunter2pw@db:5432/kapman")
    monkeypatch.setenv("POLYGON_API_KEY", "sekritkey")
    monkeypatch.setenv("FLATFILES_SECRET_ACCESS_KEY", "s3secretvalue")
    s = load_settings(tmp_path / "x")
    text = repr(s) + str(s)
    for secret in ("hunter2pw", "sekritkey", "s3secretvalue"):
        assert secret not in text
    assert "kapman:***@db:5432/kapman" in text
    assert set(s.secrets()) == {"hunter2pw", "sekritkey", "s3secretvalue"}


@pytest.mark.parametrize("url, masked", [
    ("postgresql://u:p@h:5432/d", "postgresql://u:***@h:5432/d"),
    ("postgresql://u@h/d", "postgresql://u@h/d"),
    ("postgresql://h/d?password=x&sslmode=require", "postgresql://h/d?password=***&sslmode=require"),
    ("postgresql://u:p%40ss@h/d", "postgresql://u:***@h/d"),
    (None, "<unset>"),
])
def test_mask_url(url: str | None, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(("base", "why"), [
    ("ftp://api.massive.com", "must be http(s)://host[:port]"),
    ("api.massive.com", "must be http(s)://host[:port]"),
    ("https://api.massive.com:99999", "must be http(s)://host[:port]"),
    ("https://user:pw@api.massive.com", "must have no user information, query or fragment"),
    ("https://api.massive.com?apiKey=x", "must have no user information, query or fragment"),
    ("http://[::1", "must be http(s)://host[:port]"),  # urlsplit's ValueError was 'unexpected ... a bug'
])
def test_base_url_is_a_scheme_and_a_host_only(base: str, why: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The API key goes wherever POLYGON_BASE_URL points: it is checked like every other input."""
    monkeypatch.setenv("POLYGON_BASE_URL", base)
    with pytest.raises(ConfigError, match=re.escape(why)) as info:
        load_settings(tmp_path / "x")
    assert ":pw@" not in info.value.message


@pytest.mark.parametrize("base", ["http://api.massive.com", "http://10.0.0.5:8080", "HTTP://api.example.com"])
def test_the_api_key_never_goes_over_plain_http_to_another_machine(base: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYGON_BASE_URL", base)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "x")
    assert info.value.message.endswith("is plain http to another machine: the API key would cross the network "
                                       "readable by anyone on the way")
    assert info.value.hint and info.value.hint.startswith("use https://")


@pytest.mark.parametrize("base", ["http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765",
                                  "https://api.massive.com"])
def test_plain_http_to_this_machine_and_https_anywhere_are_taken(base: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYGON_BASE_URL", base)
    assert load_settings(tmp_path / "x").polygon_base_url == base


@pytest.mark.parametrize("name", ["FLATFILES_ENDPOINT", "KAPMAN_ARCHIVE_ENDPOINT"])
@pytest.mark.parametrize(("value", "why"), [
    ("notaurl", "must be http(s)://host[:port]"),
    ("https://u:secretpw@files.example.com", "must have no user information, query or fragment"),
    ("http://127.0.0.1:0", "must be http(s)://host[:port]"),
    ("https://[files.example.com", "must be http(s)://host[:port]"),
])
def test_s3_endpoints_are_a_scheme_and_a_host_named_in_one_line(name: str, value: str, why: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 refused them later as 'unexpected ValueError: Invalid endpoint', a bug by its own words."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(f"{name} {why}")) as info:
        load_settings(tmp_path / "x")
    assert "secretpw" not in info.value.message and info.value.exit_code == 2


@pytest.mark.parametrize("value", ["http://127.0.0.1:9000", "https://s3.eu-west-1.amazonaws.com/"])
def test_s3_endpoints_that_are_urls_are_kept(value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLATFILES_ENDPOINT", value)
    monkeypatch.setenv("KAPMAN_ARCHIVE_ENDPOINT", value)
    s = load_settings(tmp_path / "x")
    assert (s.flatfiles_endpoint, s.archive_endpoint) == (value, value)


@pytest.mark.parametrize("bucket", ["no such bucket", "flat/files", "x" * 256])
def test_a_flatfiles_bucket_that_is_no_bucket_name_is_named_in_one_line(bucket: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """It reached boto3: 'error: list us_stocks_sip/day_aggs_v1/2025/12/: ParamValidationError'."""
    monkeypatch.setenv("FLATFILES_BUCKET", bucket)
    with pytest.raises(ConfigError, match=r"^FLATFILES_BUCKET='.*' is not a bucket name") as info:
        load_settings(tmp_path / "x")
    assert info.value.exit_code == 2


def test_a_flatfiles_bucket_by_default_and_as_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(tmp_path / "x").flatfiles_bucket == "flatfiles"
    monkeypatch.setenv("FLATFILES_BUCKET", "my-bucket.eu_1")
    assert load_settings(tmp_path / "x").flatfiles_bucket == "my-bucket.eu_1"
