"""Step 3 against a hostile upstream (the sandbox's body/reshape/patch faults): a bad page is
retried, a persistently bad one is one line and exit 2, a date-only delisted_utc is a date."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from kapman.errors import TransientProviderError
from kapman.ingest.tickers import ingest_tickers
from kapman.providers.polygon import PolygonClient
from kapman.sandbox.rest import SandboxRestServer

pytestmark = pytest.mark.integration
TICKERS = "/v3/reference/tickers"


def test_one_page_that_is_not_json_is_retried(db: psycopg.Connection, polygon: PolygonClient,
                                              rest: SandboxRestServer, sleeps: list[float]) -> None:
    """It used to be called transient yet never retried: one bad page failed the whole run."""
    rest.faults.body("<html>gateway hiccup</html>", path_prefix=TICKERS)
    result = ingest_tickers(db, polygon, force=True)
    assert result.exit_code == 0 and len(sleeps) == 1
    assert db.execute("SELECT count(*) FROM tickers").fetchone()[0] > 0  # type: ignore[index]


@pytest.mark.parametrize(("fault", "said"), [
    ({"kind": "body", "body": "<html>proxy</html>"}, "response is not JSON (received 18 bytes: '<html>proxy</html>')"),
    ({"kind": "reshape", "fields": {"results": {"ticker": "AAPL"}}}, "results is a JSON dict, not a list"),
    ({"kind": "reshape", "fields": {"next_url": 12}}, "next_url is 12, not a URL"),
    ({"kind": "reshape", "fields": {"next_url": "@127.0.0.1:9/v3/reference/tickers?cursor=x"}},
     "page 1's next_url '@127.0.0.1:9/v3/reference/tickers?cursor=x' is neither a path of the API"),
])
def test_a_persistently_bad_page_is_one_line_exit_2_and_json(fresh_db: str, rest: SandboxRestServer,
                                                             fault: dict, said: str) -> None:
    rest.faults.apply({**fault, "times": 50, "path_prefix": TICKERS})
    env = {**os.environ, "POLYGON_API_KEY": rest.api_key, "POLYGON_BASE_URL": rest.base_url,
           "KAPMAN_ENV_FILE": "/nonexistent", "POLYGON_MAX_RETRIES": "2"}
    cmd = [sys.executable, "-m", "scripts.ingest_tickers", "--force", "--db-url", fresh_db]
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    first = plain.stderr.splitlines()[0]
    assert first.startswith(f"error: {TICKERS}") and said in first and rest.api_key not in plain.stderr
    as_json = subprocess.run([*cmd, "--json"], capture_output=True, text=True, env=env, timeout=180)
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and data["exit_code"] == 2 and said in data["error"]
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM tickers").fetchone() == (0,)


def test_a_date_only_delisted_utc_is_that_day(fresh_db: str, rest: SandboxRestServer) -> None:
    """It used to end the run in a TypeError traceback (naive compared with aware), exit 1."""
    rest.faults.patch("delisted_utc", "2025-06-02", times=2, path_prefix=TICKERS)  # the listed page, then the delisted
    env = {**os.environ, "POLYGON_API_KEY": rest.api_key, "POLYGON_BASE_URL": rest.base_url,
           "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_NOW": "2025-12-19"}
    proc = subprocess.run([sys.executable, "-m", "scripts.ingest_tickers", "--force", "--db-url", fresh_db, "--json"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT delisted_utc FROM tickers WHERE delisted_utc::date = '2025-06-02'").fetchall()
    assert rows and all(r[0].isoformat() == "2025-06-02T00:00:00+00:00" for r in rows)


def test_a_record_whose_ticker_is_not_a_symbol_is_rejected_by_reason_and_the_rest_stored(
        db: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer) -> None:
    """``"ticker": true`` used to be stored as the ticker 'True'."""
    first = next(iter(polygon.ticker_pages()))[0]["ticker"]
    clean = ingest_tickers(db, polygon, force=True)
    stored = {r[0] for r in db.execute("SELECT symbol FROM tickers").fetchall()}
    db.execute("TRUNCATE tickers CASCADE")
    rest.faults.patch("ticker", True, times=1, index=0, path_prefix=TICKERS)
    result = ingest_tickers(db, polygon, force=True)
    assert result.exit_code == 0 and result.details.invalid_by_reason == {"bad_symbol": 1}
    assert result.rejected == 1 and result.details.kept == clean.details.kept - 1
    assert "invalid bad_symbol: 1 (e.g. ticker True is not a symbol)" in result.notes
    assert {r[0] for r in db.execute("SELECT symbol FROM tickers").fetchall()} == stored - {first}


def test_a_last_updated_utc_beyond_datetimes_range_is_absent_for_that_record(
        db: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer) -> None:
    """It used to end the whole step in an OverflowError traceback."""
    first = next(iter(polygon.ticker_pages()))[0]["ticker"]
    rest.faults.patch("last_updated_utc", "9999-12-31T23:59:59-01:00", times=1, index=0, path_prefix=TICKERS)
    result = ingest_tickers(db, polygon, force=True)
    assert result.exit_code == 0 and result.rejected == 0
    rows = dict(db.execute("SELECT symbol, last_updated_utc FROM tickers").fetchall())
    assert rows[first] is None and len(rows) == result.details.kept
    assert sum(v is None for v in rows.values()) == 1


def test_a_200_with_an_error_status_mid_list_deactivates_nothing(db: psycopg.Connection, polygon: PolygonClient,
                                                                  rest: SandboxRestServer, sleeps: list[float],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A page that says ``"status": "ERROR"`` (no results, no next_url) used to end the listed
    tickers there: the run succeeded and marked every ticker after the first page inactive."""
    monkeypatch.setattr("kapman.providers.polygon.TICKERS_PAGE", 50)
    first = ingest_tickers(db, polygon, force=True)
    active = db.execute("SELECT count(*) FROM tickers WHERE active").fetchone()[0]  # type: ignore[index]
    assert first.details.pages > 3 and active > 100
    error = '{"status": "ERROR", "request_id": "r9", "error": "Internal error"}'
    rest.faults.apply({"kind": "body", "body": error, "path_prefix": TICKERS, "after": 1, "times": 1})
    retried = ingest_tickers(db, polygon, force=True)  # once: a retry
    assert retried.exit_code == 0 and retried.details.deactivated == 0 and len(sleeps) == 1
    rest.faults.apply({"kind": "body", "body": error, "path_prefix": TICKERS, "after": 1, "times": 50})
    with pytest.raises(TransientProviderError) as info:
        ingest_tickers(db, polygon, force=True)
    assert info.value.message.startswith(f"{TICKERS}: wrongly shaped page: status is 'ERROR', an error's (received ")
    assert info.value.message.endswith("(gave up after 5 attempts)")
    assert db.execute("SELECT count(*) FROM tickers WHERE active").fetchone()[0] == active  # type: ignore[index]


class Echo:
    """A server that quotes the key it was sent back in every answer (``mode``: a 503 asking for
    an hour's wait, a 401, a next_url to another host carrying it)."""

    def __init__(self, mode: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                key = self.headers.get("Authorization", "")[7:]
                status, headers, top = {
                    "deadline": (503, {"Retry-After": "3600"}, {"error": f"upstream: Bearer {key} key {key}"}),
                    "auth": (401, {}, {"error": f"Unknown API Key {key}"}),
                    "next_url": (200, {}, {"results": [], "next_url": f"@evil.example/x?apiKey={key}"}),
                }[mode]
                body = json.dumps({"status": "ERROR" if status != 200 else "OK", **top}).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.mark.parametrize(("mode", "said"), [
    ("deadline", "503 upstream: Bearer *** key ***, and a retry in 3600s would pass the request deadline"),
    ("auth", "401 Unknown API Key ***"),
    ("next_url", "page 1's next_url '@evil.example/x?apiKey=***' is neither a path of the API"),
])
def test_a_key_the_server_echoes_is_in_no_output_and_no_ledger_row(fresh_db: str, mode: str, said: str) -> None:
    """A deadline error quoted the server's words unmasked, and so did a refused next_url."""
    echo, key = Echo(mode), "Sup3rSecretKey-987"
    env = {**os.environ, "POLYGON_API_KEY": key, "POLYGON_BASE_URL": echo.url, "KAPMAN_ENV_FILE": "/nonexistent"}
    try:
        for flags in ([], ["--json"], ["--debug", "--verbose"]):
            proc = subprocess.run([sys.executable, "-m", "scripts.ingest_tickers", "--force", "--db-url", fresh_db,
                                   *flags], capture_output=True, text=True, env=env, timeout=180)
            assert proc.returncode == 2 and said in proc.stdout + proc.stderr
            assert key not in proc.stdout + proc.stderr
    finally:
        echo.httpd.shutdown()
        echo.httpd.server_close()
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT status, args::text || coalesce(summary::text, ''), error "
                            "FROM ingest_runs").fetchall()
    assert len(rows) == 3 and all(status == "failed" and said in error and key not in stored + error
                                  for status, stored, error in rows)


def test_a_listed_record_whose_ticker_cannot_be_read_deactivates_no_stored_ticker(
        db: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer) -> None:
    """A listing holding a record whose ticker is unreadable (a proxy's 'ＡAPL') cannot say which ticker
    that record was: it marked the stored one inactive, out of the options scope for the evening."""
    ingest_tickers(db, polygon, force=True)
    first = next(iter(polygon.ticker_pages()))[0]["ticker"]
    rest.faults.patch("ticker", "\uff21" + first[1:], times=1, index=0, path_prefix=TICKERS)
    held = ingest_tickers(db, polygon, force=True)
    assert held.exit_code == 1 and held.details.deactivated == 0 and held.details.held_active == 1
    assert [f.unit for f in held.failures] == ["deactivations"]
    assert "1 record whose ticker could not be read" in held.failures[0].reason
    assert db.execute("SELECT active FROM tickers WHERE symbol = %s", (first,)).fetchone() == (True,)
    assert db.execute("SELECT count(*) FROM tickers WHERE NOT active AND delisted_utc IS NULL").fetchone() == (0,)
    rest.faults.patch("ticker", "\uff21" + first[1:], times=1, index=0, path_prefix=TICKERS)
    allowed = ingest_tickers(db, polygon, force=True, allow_deactivations=True)
    assert allowed.exit_code == 0 and allowed.details.deactivated == 1
    assert db.execute("SELECT active FROM tickers WHERE symbol = %s", (first,)).fetchone() == (False,)


@pytest.mark.parametrize("key", ["it-secret\r\nX-Other: 1", "it-secret\u20ac", "it-secret\tkey"])
def test_an_api_key_an_http_header_cannot_carry_is_refused_without_being_shown(fresh_db: str, rest: SandboxRestServer,
                                                                               key: str) -> None:
    """A key holding CR LF ended the run as 'unexpected ValueError ... Invalid header value b'Bearer <the key>'',
    the key printed; a non-Latin-1 one as an unexpected UnicodeEncodeError."""
    env = {**os.environ, "POLYGON_API_KEY": key, "POLYGON_BASE_URL": rest.base_url,
           "KAPMAN_ENV_FILE": "/nonexistent"}
    requests = rest.request_count()
    proc = subprocess.run([sys.executable, "-m", "scripts.ingest_tickers", "--force", "--db-url", fresh_db],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "unexpected" not in proc.stderr
    assert proc.stderr.splitlines()[0] == ("error: POLYGON_API_KEY holds a character other than visible ASCII "
                                           "(position 10); the key is not shown")
    assert "it-secret" not in proc.stdout + proc.stderr
    assert rest.request_count() == requests
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM tickers").fetchone() == (0,)
