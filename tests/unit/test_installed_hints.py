"""An installed KapMan (no checkout) gives hints that work there: no ``./dev.sh``, compose file,
``.env.example`` or ``python -m kapman.sandbox`` (whose ``python`` may not be KapMan's); a checkout
keeps its own.  The demo's steps run this KapMan, whatever PATH holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kapman import __version__, config, registry, runbook
from kapman.config import ConfigError, Settings
from kapman.db.capabilities import ServerInfo
from kapman.db.connect import connect
from kapman.db.rebuild import check_server
from kapman.errors import ConnectionLost, DatabaseError
from kapman.providers.flatfiles import MirrorSource

CHECKOUT_ONLY = ("dev.sh", "docker compose", ".env.example", "python -m")


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "CHECKOUT", None)


def _hints(tmp_path: Path) -> list[str]:
    """The hint of every error an installed user meets before anything works."""
    hints = []
    with pytest.raises(ConfigError) as missing:
        Settings(env_file=tmp_path / ".env").require_database_url()
    hints.append(missing.value.hint or "")
    with pytest.raises(ConfigError) as no_key:
        Settings().require_polygon_api_key()
    hints.append(no_key.value.hint or "")
    with pytest.raises(DatabaseError) as down:
        connect(f"postgresql://kapman:s3cretpw@/kapman?host={tmp_path}&port=5499")
    hints.append(down.value.hint or "")
    with pytest.raises(DatabaseError) as no_timescale:
        check_server(ServerInfo(postgres_version="16", timescaledb_available=None, timescaledb_installed=None,
                                preloaded=False, license=None))
    hints.append(no_timescale.value.hint or "")
    with pytest.raises(ConfigError) as no_mirror:
        MirrorSource(tmp_path / "nowhere", "us_stocks_sip/day_aggs_v1")
    hints.append(no_mirror.value.hint or "")
    hints.append(ConnectionLost().hint or "")
    return hints


def test_an_installed_kapmans_hints_name_nothing_only_a_checkout_has(installed: None, tmp_path: Path) -> None:
    hints = _hints(tmp_path)
    assert not [h for h in hints if any(word in h for word in CHECKOUT_ONLY)], hints
    assert hints[0] == f"put DATABASE_URL=... in {tmp_path / '.env'}, or pass --db-url postgresql://user:password@host:port/db"
    assert "(kapman sandbox serve)" in hints[1] and "kapman sandbox write-mirror DIR" in hints[4]
    assert hints[2].startswith("start the database server (PostgreSQL with TimescaleDB) and check host and port")


def test_a_checkouts_hints_keep_its_own_tools(tmp_path: Path) -> None:
    hints = _hints(tmp_path)
    assert hints[0].startswith("copy .env.example to .env") and "./dev.sh db up" in hints[2]
    assert "python -m kapman.sandbox serve" in hints[1] and "(./dev.sh db status)" in hints[5]


def test_database_url_unset_names_the_env_file_looked_in(tmp_path: Path) -> None:
    """KAPMAN_ENV_FILE naming a file that is not there read as "looked in .env", whichever .env."""
    with pytest.raises(ConfigError) as absent:
        Settings(env_file=tmp_path / "none.env").require_database_url()
    assert absent.value.message == (f"DATABASE_URL is not set (looked in the environment and "
                                    f"{tmp_path / 'none.env'}, which does not exist)")
    (tmp_path / ".env").write_text("POLYGON_API_KEY=k\n")
    with pytest.raises(ConfigError) as empty:
        Settings(env_file=tmp_path / ".env").require_database_url()
    assert empty.value.message == f"DATABASE_URL is not set (looked in the environment and {tmp_path / '.env'})"


def test_load_settings_records_the_env_file_it_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KAPMAN_ENV_FILE", str(tmp_path / "x.env"))
    assert config.load_settings().env_file == tmp_path / "x.env"


def test_the_demos_kapman_steps_run_this_interpreters_kapman() -> None:
    """An installed demo ran ``kapman ...`` from PATH: FileNotFoundError when its venv was not
    activated, or another install's KapMan when one was first on PATH."""
    argv = runbook.Step("2", "schema", "kapman rebuild --yes").argv()
    assert argv == [sys.executable, "-m", "kapman", "rebuild", "--yes"]
    done = subprocess.run([*argv[:3], "--version"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/nonexistent"})
    assert (done.returncode, done.stdout) == (0, f"kapman {__version__}\n"), done.stderr


def test_the_dashboards_are_the_runbooks_files_in_a_checkout_else_by_full_path(monkeypatch: pytest.MonkeyPatch,
                                                                                tmp_path: Path) -> None:
    assert runbook.dashboard_file("ohlcv_dashboard.sql") == "docs/runbooks/ohlcv_dashboard.sql"
    monkeypatch.setattr(runbook, "PROJECT_ROOT", tmp_path)     # KAPMAN_HOME elsewhere: psql runs there
    path = runbook.dashboard_file("ohlcv_dashboard.sql")
    assert Path(path).is_absolute() and Path(path).is_file()
    assert runbook.dashboard_steps()[1].command.endswith(f"-f {path}")


def _kept_line() -> str:
    """The retention line of a run that kept an option snapshot the archive lacks."""
    from datetime import UTC, datetime

    from kapman.db import lifecycle, retention
    report = retention.RetentionReport(mode="application", cutoff=datetime(2023, 12, 20).date(),
                                       now=lifecycle.Now(datetime(2025, 12, 19, 21, tzinfo=UTC), "KAPMAN_NOW"),
                                       kept=[datetime(2023, 12, 18, 21, tzinfo=UTC)])
    return report.describe()


def test_the_retention_line_names_the_archiving_command_of_an_installed_kapman(installed: None) -> None:
    """It wrote the checkout's ``python -m scripts.ingest_options`` whatever ran it."""
    line = _kept_line()
    assert "(`kapman options --archive-only` archives them;" in line
    assert "python -m" not in line


def test_the_retention_line_names_the_archiving_command_of_a_checkout() -> None:
    assert "(`python -m scripts.ingest_options --archive-only` archives them;" in _kept_line()
