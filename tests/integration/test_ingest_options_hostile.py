"""A hostile upstream against options runs (the sandbox's body/reshape/patch faults): the API key
never leaves its host, a refused contract loses only itself, and a replay that met a refused page
or contract removes nothing stored."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from kapman import archive
from kapman.archive import restore
from kapman.config import Settings
from kapman.providers.polygon import PolygonClient
from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer
from kapman.step import Outcome
from tests.integration.test_ingest_options import FOUR, rows_by_key, run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("market_clock")]


class Capture:
    """Another host on 127.0.0.1 that answers every GET with an empty page and records its headers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                capture.seen.append({"path": self.path, **dict(self.headers)})
                body = b'{"status": "OK", "results": []}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])


@pytest.fixture
def other_host() -> Iterator[Capture]:
    capture = Capture()
    yield capture
    capture.httpd.shutdown()
    capture.httpd.server_close()


@pytest.mark.parametrize("form", ["@127.0.0.1:{port}", ":{port}@127.0.0.1:{port}"])
def test_a_schemeless_next_url_neither_sends_the_key_away_nor_empties_a_replay(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer,
    other_host: Capture, form: str,
) -> None:
    first = run(options_url, polygon, ["ORCL"])
    stored = rows_by_key(odb, "ORCL")
    assert first.outcomes["ORCL"].status == "ok" and first.outcomes["ORCL"].pages > 1 and stored
    path = "/v3/snapshot/options/ORCL"
    next_url = form.format(port=other_host.port) + path + "?cursor=x"
    assert urlsplit(rest.base_url + next_url).port == other_host.port  # what glueing would reach
    rest.faults.reshape({"next_url": next_url}, symbol="ORCL")
    replay = run(options_url, polygon, ["ORCL"])
    outcome = replay.outcomes["ORCL"]
    assert other_host.seen == []  # not a request, let alone the key
    assert outcome.status == "failed" and f"{path}: page 1's next_url " in outcome.reason
    assert "not followed" in outcome.reason and rest.api_key not in outcome.reason
    assert rows_by_key(odb, "ORCL") == stored and replay.rows_removed == 0
    assert replay.step_result().exit_code != 0


def test_one_contract_with_open_interest_1e300_loses_only_itself(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer,
) -> None:
    first = run(options_url, polygon, ["ORCL"])
    stored = rows_by_key(odb, "ORCL")
    rest.faults.patch("open_interest", 1e300, symbol="ORCL")
    replay = run(options_url, polygon, ["ORCL"])
    outcome = replay.outcomes["ORCL"]
    assert outcome.status == "ok" and outcome.dropped == {"malformed": 1}
    assert len(outcome.samples) == 1 and "open_interest 1e+300 is out of range (0..2**63-1)" in outcome.samples[0]
    assert outcome.samples[0].startswith("O:ORCL")
    # The refused contract's stored row stays: a replay that refused a contract removes nothing.
    assert rows_by_key(odb, "ORCL") == stored and replay.rows_removed == 0
    assert outcome.unchanged == first.outcomes["ORCL"].rows - 1


@pytest.mark.parametrize(("value", "said"), [(1e300, "greeks.gamma 1e+300 is out of range (-1e-06..10000)"),
                                            (-0.5, "greeks.gamma -0.5 is out of range (-1e-06..10000)")])
def test_one_contract_with_an_impossible_gamma_loses_only_itself(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer,
    value: float, said: str,
) -> None:
    """A gamma of 1e300 was stored and made A3's call wall (GEX 4e305, status FULL); a negative one
    turned a contract's GEX around.  A3 reads gamma as given, so it is checked as delta is."""
    first = run(options_url, polygon, ["ORCL"])
    stored = rows_by_key(odb, "ORCL")
    rest.faults.patch("greeks.gamma", value, symbol="ORCL")
    replay = run(options_url, polygon, ["ORCL"])
    outcome = replay.outcomes["ORCL"]
    assert outcome.status == "ok" and outcome.dropped == {"malformed": 1}
    assert len(outcome.samples) == 1 and said in outcome.samples[0] and outcome.samples[0].startswith("O:ORCL")
    assert rows_by_key(odb, "ORCL") == stored and replay.rows_removed == 0
    assert outcome.unchanged == first.outcomes["ORCL"].rows - 1
    assert odb.execute("SELECT count(*) FROM options_chains WHERE gamma < 0 OR gamma > 1e4").fetchone() == (0,)


@pytest.mark.parametrize(("field", "value"), [("greeks.theta", 1e300), ("greeks.vega", -1e300)])
def test_a_contract_stored_is_a_contract_the_archive_restores(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer, tmp_path: Path,
    field: str, value: float,
) -> None:
    """A theta of 1e300 was stored and archived, and the restore then refused the symbol's whole file
    ('implausible value ... theta 1e+300 outside [-1e+06, 1e+06]'): a snapshot lost to a repave.
    Now the run refuses that contract alone, and what it stores the archive takes back."""
    rest.faults.patch(field, value, symbol="ORCL")
    first = run(options_url, polygon, ["ORCL"])
    outcome = first.outcomes["ORCL"]
    assert outcome.status == "ok" and outcome.dropped == {"malformed": 1}
    assert f"{field} {value:.6g} is out of range (-1e+06..1e+06)" in outcome.samples[0]
    stored = rows_by_key(odb, "ORCL")
    settings = Settings(database_url=options_url, archive_location=str(tmp_path / "archive"))
    assert archive.export_snapshots(settings, []).ok
    odb.execute("DELETE FROM options_chains")
    result = restore.run(settings, restore.RestoreParams())
    assert result.outcome is Outcome.OK, result.summary()
    assert rows_by_key(odb, "ORCL") == stored and result.written == len(stored)


@pytest.mark.parametrize(("fault", "said"), [
    ({"kind": "body", "body": "<html>proxy error</html>"}, "response is not JSON (received 24 bytes"),
    ({"kind": "body", "body": '{"x": ' + "[" * 5000 + "]" * 5000 + ', "results": []}'},
     "response is not JSON (received 10022 bytes"),  # deeper than the stack: not RecursionError
    ({"kind": "reshape", "fields": {"results": {"x": 1}}}, "results is a JSON dict, not a list"),
    ({"kind": "reshape", "fields": {"next_url": 42}}, "next_url is 42, not a URL"),
])
def test_a_bad_page_is_retried_then_fails_only_its_symbol(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer,
    sleeps: list[float], fault: dict, said: str,
) -> None:
    run(options_url, polygon, ["ORCL", "DIA"])
    stored = rows_by_key(odb, "ORCL")
    rest.faults.apply({**fault, "symbol": "ORCL", "times": 1})
    healed = run(options_url, polygon, ["ORCL", "DIA"])  # one bad answer: a retry heals it
    assert healed.outcomes["ORCL"].status == "ok" and sleeps
    rest.faults.apply({**fault, "symbol": "ORCL", "times": 50})
    failed = run(options_url, polygon, ["ORCL", "DIA"])
    reason = failed.outcomes["ORCL"].reason or ""
    assert failed.outcomes["ORCL"].status == "failed" and said in reason and "gave up after 5 attempts" in reason
    assert failed.outcomes["DIA"].status == "ok"
    assert rows_by_key(odb, "ORCL") == stored


@pytest.mark.parametrize("page", [0, 1])
def test_a_200_with_an_error_status_fails_the_symbol_and_empties_no_replay(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer, page: int,
) -> None:
    """``{"status": "ERROR"}`` with a 200 used to read as the chain's last page: on the first page
    a replay found the chain empty and deleted the stored snapshot; on the second it removed
    every contract of the later pages."""
    first = run(options_url, polygon, ["ORCL", "DIA"])
    stored = rows_by_key(odb, "ORCL")
    assert first.outcomes["ORCL"].pages > 1 and stored
    rest.faults.apply({"kind": "body", "body": '{"status": "ERROR", "request_id": "r1", "error": "try later"}',
                       "symbol": "ORCL", "after": page, "times": 50})
    replay = run(options_url, polygon, ["ORCL", "DIA"])
    reason = replay.outcomes["ORCL"].reason or ""
    assert replay.outcomes["ORCL"].status == "failed" and "status is 'ERROR', an error's" in reason
    assert "try later" in reason and "gave up after 5 attempts" in reason
    assert replay.outcomes["DIA"].status == "ok" and replay.rows_removed == 0
    assert rows_by_key(odb, "ORCL") == stored


def test_a_ticker_with_a_lone_surrogate_loses_only_its_contract(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer,
) -> None:
    """The escaped surrogate makes orjson refuse the page and the json module decode it; the COPY
    encoder used to raise UnicodeEncodeError and lose the whole chain."""
    rest.faults.patch("details.ticker", "O:ORCL\ud800", symbol="ORCL")
    first = run(options_url, polygon, ["ORCL"])
    outcome = first.outcomes["ORCL"]
    assert outcome.status == "ok" and outcome.dropped == {"malformed": 1}
    assert outcome.samples == ["contract ticker 'O:ORCL\\ud800' is not an option ticker "
                               "(O:, root, YYMMDD, C or P, 8-digit strike)"]
    stored = rows_by_key(odb, "ORCL")
    assert len(stored) == outcome.rows > 250  # the rest of the chain, beyond its first page
    run(options_url, polygon, ["ORCL"])  # the same snapshot unharmed adds just that contract
    complete = rows_by_key(odb, "ORCL")
    missing = set(complete) - set(stored)
    assert len(missing) == 1 and {k: complete[k] for k in stored} == stored
    assert complete[missing.pop()][5].startswith("O:ORCL")


def test_a_quote_time_beyond_datetime_is_stored_null(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer,
) -> None:
    """A NaN sends the page to the json module, which keeps 10**22 an int: its time used to raise
    OverflowError and fail the symbol."""
    rest.faults.patch("last_quote", {"bid": 1.25, "ask": float("nan"), "last_updated": 10**22}, symbol="ORCL")
    first = run(options_url, polygon, ["ORCL"])
    outcome = first.outcomes["ORCL"]
    assert outcome.status == "ok" and outcome.dropped == {} and outcome.rows == len(rows_by_key(odb, "ORCL"))
    unquoted = odb.execute("SELECT bid, ask, quote_updated_at FROM options_chains WHERE ask IS NULL").fetchall()
    assert unquoted == [(1.25, None, None)]
    assert odb.execute("SELECT count(*) FROM options_chains WHERE quote_updated_at IS NULL").fetchone() == (1,)


def test_numbers_sent_as_text_are_stored_null_counted_per_field_and_noted(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer,
) -> None:
    """A number as a JSON string is not read as one (guessing its format stores what no one sent),
    nor lost silently: stored NULL, counted per field with an example, the contract kept."""
    rest.faults.patch("open_interest", "10", symbol="ORCL")  # one contract of page 1
    rest.faults.patch("greeks", {"delta": "0.5", "gamma": 0.01}, symbol="ORCL", index=1)  # page 2
    first = run(options_url, polygon, ["ORCL"])
    outcome = first.outcomes["ORCL"]
    assert outcome.pages >= 2 and outcome.status == "ok" and outcome.dropped == {}
    assert outcome.rows == len(rows_by_key(odb, "ORCL"))
    assert outcome.not_numbers == {"open_interest": 1, "greeks.delta": 1}
    assert outcome.not_number_examples == {"open_interest": "'10'", "greeks.delta": "'0.5'"}
    assert odb.execute("SELECT count(*) FROM options_chains WHERE open_interest IS NULL").fetchone() == (1,)
    assert odb.execute("SELECT count(*) FROM options_chains WHERE delta IS NULL AND gamma = 0.01").fetchone() == (1,)
    step = first.step_result()
    assert step.exit_code == 0 and step.rejected == 0
    assert ("values sent as text (or another non-number) read as NULL, contracts kept: ORCL (greeks.delta: 1 value, "
            "e.g. '0.5'; open_interest: 1 value, e.g. '10')") in step.notes
    assert first.as_dict()["outcomes"]["ORCL"]["not_numbers"] == {"open_interest": 1, "greeks.delta": 1}
    assert outcome.held == 0 and not [n for n in step.notes if "kept" in n and "stored values" in n]


def chain_key(result: dict) -> tuple:
    """A sandbox result's key in ``rows_by_key``: (expiration, strike, type)."""
    details = result["details"]
    return (date.fromisoformat(details["expiration_date"]), Decimal(str(details["strike_price"])).quantize(FOUR),
            details["contract_type"][0].upper())


def test_a_replay_keeps_a_stored_contract_whose_new_value_is_sent_as_text(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer, market: Market,
) -> None:
    """A replay of a stored snapshot whose open_interest for a contract comes as text used to store it
    NULL over the good value, which cannot be fetched again: that contract keeps its stored row, the
    rest of the chain is written as the replay says, and the run says so."""
    first = run(options_url, polygon, ["MSFT"])
    assert first.outcomes["MSFT"].status == "ok" and first.outcomes["MSFT"].held == 0
    stored = rows_by_key(odb, "MSFT")
    chain = market.option_chain("MSFT", rest.now)
    index = next(i for i, r in enumerate(chain) if r["details"]["ticker"] == "O:MSFT251226C00300000")
    assert index < 250  # on page 1
    held = chain_key(chain[index])
    assert stored[held][12] is not None and 123456 not in {r[12] for r in stored.values()}
    rest.faults.patch("open_interest", "10", symbol="MSFT", index=index)  # page 1
    rest.faults.patch("open_interest", 123456, symbol="MSFT")  # page 2: a new, readable value
    replay = run(options_url, polygon, ["MSFT"])
    outcome = replay.outcomes["MSFT"]
    assert outcome.status == "ok" and outcome.not_numbers == {"open_interest": 1}
    assert (outcome.held, outcome.updated, outcome.inserted, outcome.removed) == (1, 1, 0, 0)
    assert outcome.unchanged == outcome.rows - 1
    now = rows_by_key(odb, "MSFT")
    assert now[held] == stored[held]  # not NULL
    changed = [k for k in stored if now[k] != stored[k]]  # page 2's first contract
    assert len(changed) == 1 and set(now) == set(stored)
    assert now[changed[0]] == (*stored[changed[0]][:12], 123456, *stored[changed[0]][13:])
    step = replay.step_result()
    assert step.exit_code == 0
    assert "1 contract kept its stored values because the new ones could not be read: MSFT (1)" in step.notes
    assert replay.as_dict()["outcomes"]["MSFT"]["held"] == 1
