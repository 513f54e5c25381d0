"""Connection failures that need no server to tell apart: a socket nobody serves, options libpq refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from kapman.db.connect import connect, database_name
from kapman.errors import ConfigError, DatabaseError
from tests.support import entry


def test_a_unix_socket_nobody_serves_is_no_server_answering(tmp_path: Path) -> None:
    """libpq fails a missing socket before any server is asked, as it refuses a bad option, and it
    was read as one: 'fix the connection options in DATABASE_URL', not transient."""
    url = f"postgresql://kapman:s3cretpw@/kapman?host={tmp_path}&port=5499"
    with pytest.raises(DatabaseError) as e:
        connect(url)
    assert e.value.message.endswith(f": no database server answers at {tmp_path}/.s.PGSQL.5499")
    assert e.value.sqlstate == "08001" and e.value.transient and "start the database" in (e.value.hint or "")
    assert "s3cretpw" not in e.value.message and "\t" not in e.value.message


def test_an_option_libpq_refuses_is_still_named_in_one_line() -> None:
    with pytest.raises(DatabaseError) as e:
        connect("postgresql://kapman:s3cretpw@127.0.0.1:99999/kapman")
    assert e.value.message == ("cannot connect to postgresql://kapman:***@127.0.0.1:99999/kapman: "
                               'invalid port number: "99999"')
    assert not e.value.transient and "connection options" in (e.value.hint or "")


@pytest.mark.parametrize("module", ["scripts.db.a5_deterministic_rebuild", "scripts.db.migrate"])
@pytest.mark.parametrize(("given", "named"), [("notaurl", "notaurl"),
                                              ("mysql://kapman:s3cretpw@h/x", "mysql://kapman:***@h/x")])
def test_a_url_that_is_not_postgresql_is_named_as_given_by_the_commands_that_reach_the_maintenance_db(
        module: str, given: str, named: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The rebuild and migrate derive the server's maintenance database from DATABASE_URL: a URL
    that is not PostgreSQL's was named as that derived URL ('not a PostgreSQL URL: /postgres')."""
    monkeypatch.setenv("DATABASE_URL", given)
    ran = entry.run(module, ["--yes"] if "rebuild" in module else [], capsys, monkeypatch)
    assert ran.returncode == 2
    assert ran.stderr.splitlines()[0] == f"error: not a PostgreSQL URL: {named}"
    assert "s3cretpw" not in ran.stderr + ran.stdout


def test_database_name_refuses_a_url_that_is_not_postgresql() -> None:
    with pytest.raises(ConfigError) as e:
        database_name("notaurl")
    assert e.value.message == "not a PostgreSQL URL: notaurl"
