from __future__ import annotations

import base64
import gzip
import json
import time
import urllib.error
import urllib.request
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, urlsplit

import boto3
import massive
import pytest

from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer
from kapman.sandbox.s3 import SandboxS3

KEY = "test-key"


def get(url: str, key: str | None = KEY, **headers: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(
        url, headers={**({"Authorization": f"Bearer {key}"} if key else {}), **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def get_json(url: str, **kw) -> tuple[int, dict]:
    status, _, body = get(url, **kw)
    return status, json.loads(body)


def client(server: SandboxRestServer) -> massive.RESTClient:
    return massive.RESTClient(api_key=KEY, base=server.base_url, retries=0)


def test_massive_client_lists_all_tickers(server: SandboxRestServer, market: Market):
    got = [t.ticker for t in client(server).list_tickers(market="stocks", limit=1000)]
    active = sorted(r["ticker"] for r in market.tickers if r["active"])
    assert got == active and len(got) > 300
    server.reset_counts()
    got = list(client(server).list_tickers(market="stocks", limit=100))
    assert len(got) == len(active) and server.request_count("/v3/reference/tickers") == -(-len(active) // 100)


def test_massive_client_reads_whole_chain_and_grouped(server: SandboxRestServer, market: Market):
    chain = list(client(server).list_snapshot_options_chain("AAPL", params={"limit": 250}))
    assert len(chain) == len(market.option_chain("AAPL", server.now)) > 250
    assert server.request_count("/v3/snapshot/options/AAPL") == -(-len(chain) // 250)
    aggs = client(server).get_grouped_daily_aggs(date(2025, 12, 18))
    assert len(aggs) == len(market.bars(date(2025, 12, 18))) and aggs[0].ticker == "AAPL"
    assert client(server).get_grouped_daily_aggs(date(2025, 12, 25)) == []


def test_cursor_pagination_protocol(server: SandboxRestServer):
    url = f"{server.base_url}/v3/reference/tickers?type=CS&limit=50&sort=ticker&order=desc"
    seen: list[dict] = []
    while url:
        status, body = get_json(url)
        assert status == 200 and body["count"] == len(body["results"])
        seen += body["results"]
        url = body.get("next_url")
        if url:
            parts = urlsplit(url)
            assert url.startswith(server.base_url) and list(parse_qs(parts.query)) == ["cursor"]
            cursor = parse_qs(parts.query)["cursor"][0]
            assert "type" in base64.urlsafe_b64decode(cursor + "==").decode()
    assert "next_url" not in body and len(seen) > 50
    tickers = [r["ticker"] for r in seen]
    assert tickers == sorted(tickers, reverse=True) and {r["type"] for r in seen} == {"CS"}


def test_filters_and_bad_params(server: SandboxRestServer, market: Market):
    base = server.base_url
    _, body = get_json(f"{base}/v3/reference/tickers?ticker.gte=MA&ticker.lt=MSFT&limit=1000")
    assert body["results"] and all("MA" <= r["ticker"] < "MSFT" for r in body["results"])
    _, body = get_json(f"{base}/v3/reference/tickers?active=false&limit=1000")
    assert body["results"] and not any(r["active"] for r in body["results"])
    _, body = get_json(f"{base}/v3/reference/tickers?ticker=AAPL&bogus=1")
    assert [r["ticker"] for r in body["results"]] == ["AAPL"]
    _, body = get_json(
        f"{base}/v3/snapshot/options/SPY?contract_type=put&strike_price.gte=600"
        f"&expiration_date.lte=2026-01-31&limit=250&sort=strike_price"
    )
    res = body["results"]
    assert res and all(
        r["details"]["contract_type"] == "put"
        and r["details"]["strike_price"] >= 600
        and r["details"]["expiration_date"] <= "2026-01-31"
        for r in res
    )
    _, body = get_json(f"{base}/v3/snapshot/options/SPY")
    assert len(body["results"]) == 10 and "next_url" in body
    for bad in (
        "/v3/reference/tickers?limit=1001",
        "/v3/reference/tickers?active=maybe",
        "/v3/snapshot/options/SPY?limit=251",
        "/v3/reference/tickers?cursor=garbage",
        "/v2/aggs/grouped/locale/us/market/stocks/2025-13-01",
    ):
        status, body = get_json(base + bad)
        assert status == 400 and body["status"] == "ERROR"
        assert body["error"].startswith("Failed to parse query parameters from URL:")


def test_auth(server: SandboxRestServer):
    url = f"{server.base_url}/v3/reference/tickers"
    status, body = get_json(url, key=None)
    assert status == 401 and body["error"] == "API Key was not provided" and body["request_id"]
    status, body = get_json(url, key="wrong")
    assert status == 401 and body == {
        "status": "ERROR",
        "request_id": body["request_id"],
        "error": "Unknown API Key",
    }
    assert get_json(f"{url}?apiKey={KEY}", key=None)[0] == 200
    assert get_json(url)[0] == 200


def test_rate_limit_faults(server: SandboxRestServer):
    url = f"{server.base_url}/v3/reference/tickers"
    server.faults.rate_limit(times=2, retry_after=3)
    server.faults.rate_limit(times=1)
    for _ in range(2):
        status, headers, body = get(url)
        assert status == 429 and headers["Retry-After"] == "3"
        assert "exceeded the maximum requests per minute" in json.loads(body)["error"]
    status, headers, _ = get(url)
    assert status == 429 and "Retry-After" not in headers
    assert get(url)[0] == 200
    server.faults.rate_limit(times=1, symbol="TSLA")
    server.faults.rate_limit(times=1, path_prefix="/v2/", empty_body=True)
    assert get(f"{server.base_url}/v3/snapshot/options/AAPL")[0] == 200
    assert get(f"{server.base_url}/v3/snapshot/options/TSLA")[0] == 429
    status, _, body = get(f"{server.base_url}/v2/aggs/grouped/locale/us/market/stocks/2025-12-18")
    assert status == 429 and body == b""
    assert server.faults.describe()["pending"] == []


def test_server_error_slow_latency_forbid(server: SandboxRestServer):
    url = f"{server.base_url}/v3/reference/tickers?limit=1"
    server.faults.server_error(times=1)
    server.faults.server_error(times=1, html=True)
    status, _, body = get(url)
    assert status == 500 and json.loads(body)["status"] == "ERROR"
    status, headers, body = get(url)
    assert status == 502 and headers["Content-Type"] == "text/html" and b"nginx" in body
    server.faults.slow(0.3, times=1)
    started = time.perf_counter()
    assert get(url)[0] == 200 and time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    assert get(url)[0] == 200 and time.perf_counter() - started < 0.3
    server.faults.latency(0.05)
    started = time.perf_counter()
    get(url), get(url)
    assert time.perf_counter() - started >= 0.1
    server.faults.clear()
    server.faults.forbid(["NVDA"])
    status, body = get_json(f"{server.base_url}/v3/snapshot/options/NVDA")
    assert status == 403 and body["status"] == "NOT_AUTHORIZED" and "not entitled" in body["message"]
    assert get(f"{server.base_url}/v3/snapshot/options/AAPL")[0] == 200


def test_pagination_loop_repeats_a_cursor(server: SandboxRestServer):
    server.faults.pagination_loop("/v3/snapshot/options/")
    url = f"{server.base_url}/v3/snapshot/options/AAPL?limit=250"
    cursors = []
    for _ in range(4):
        _, body = get_json(url)
        url = body["next_url"]
        cursors.append(url)
    assert len(set(cursors)) < len(cursors)


def test_control_endpoint_and_clock(server: SandboxRestServer, market: Market):
    base = server.base_url

    def post(path: str, obj: object) -> dict:
        req = urllib.request.Request(base + path, data=json.dumps(obj).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    assert get_json(f"{base}/_sandbox/clock", key=None)[1]["now"] == "2025-12-19T21:00:00Z"
    assert post("/_sandbox/clock", {"now": "2025-12-17"})["now"] == "2025-12-17T21:00:00Z"
    assert post("/_sandbox/clock", {"step_trading_days": 1})["now"] == "2025-12-18T21:00:00Z"
    _, body = get_json(f"{base}/v3/snapshot/options/AAPL")
    spot = market.spot("AAPL", datetime(2025, 12, 18, 21, tzinfo=UTC))
    assert body["results"][0]["underlying_asset"]["price"] == spot
    status, body = get_json(f"{base}/v2/aggs/grouped/locale/us/market/stocks/2025-12-19")
    assert status == 200 and "results" not in body  # not closed yet on the server's clock
    server.set_clock(datetime(2025, 12, 19, 15, tzinfo=UTC))  # mid-session: spot between open and close
    bar = market.bars(date(2025, 12, 19)).set_index("ticker").loc["AAPL"]
    assert min(bar.open, bar.close) <= market.spot("AAPL", server.now) <= max(bar.open, bar.close)
    faults = post(
        "/_sandbox/faults",
        [{"kind": "rate_limit", "times": 1, "retry_after": 2}, {"kind": "forbid", "symbols": ["QQQ"]}],
    )
    assert faults["forbidden"] == ["QQQ"] and len(faults["pending"]) == 1
    assert get(f"{base}/v3/reference/tickers")[0] == 429
    counts = get_json(f"{base}/_sandbox/requests", key=None)[1]
    assert counts["by_path"]["/v3/reference/tickers"] == 1 and counts["total"] == server.request_count()


def test_same_seed_same_reference_pages():
    bodies = []
    for _ in range(2):
        with SandboxRestServer(Market(seed=9, n_tickers=220, days=10), api_key=KEY) as srv:
            bodies.append(
                # the base URL (in next_url) differs by port; a bare port number could also match digits in the data
                get(f"{srv.base_url}/v3/reference/tickers?limit=1000")[2].replace(srv.base_url.encode(), b"BASE")
            )
    assert bodies[0] == bodies[1]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_s3_flat_files():
    m = Market(seed=11, n_tickers=30, days=20)
    with SandboxS3(m) as s3:
        c = boto3.client(
            "s3",
            endpoint_url=s3.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="any",
            aws_secret_access_key="any",
        )
        keys = [o["Key"] for o in c.list_objects_v2(Bucket="flatfiles", Prefix=s3.prefix)["Contents"]]
        assert keys == [m.flat_file_key(d) for d in m.trading_days]
        obj = c.get_object(Bucket="flatfiles", Key=keys[-1])
        assert "ContentEncoding" not in obj
        data = obj["Body"].read()
        assert data == m.flat_file_csv_gz(m.trading_days[-1])
        assert (
            gzip.decompress(data).decode().splitlines()[0]
            == "ticker,volume,open,close,high,low,window_start,transactions"
        )
        etag = obj["ETag"]
        assert s3.republish(m.trading_days[-1]) != etag
        republished = c.get_object(Bucket="flatfiles", Key=keys[-1])["Body"].read()
        assert republished != data and gzip.decompress(republished) == gzip.decompress(data)
        s3.delete(m.trading_days[0])
        with pytest.raises(c.exceptions.NoSuchKey):
            c.get_object(Bucket="flatfiles", Key=keys[0])


def test_massive_client_lists_splits_forward_and_reverse(server: SandboxRestServer, market: Market):
    got = list(client(server).list_splits(limit=1))
    assert [(s.ticker, s.execution_date, s.split_from, s.split_to) for s in got] == [
        (s["ticker"], s["execution_date"], s["split_from"], s["split_to"]) for s in market.splits]
    assert server.request_count("/v3/reference/splits") == len(market.splits) == 2   # one split a page
    assert ("NVDA", "2024-06-07", 1, 10) in [(s.ticker, s.execution_date, s.split_from, s.split_to) for s in got]
    reverse = list(client(server).list_splits(reverse_split=True))
    assert len(reverse) == 1 and reverse[0].split_from == 10 and reverse[0].split_to == 1
    assert [s.ticker for s in client(server).list_splits(ticker="NVDA", execution_date_gte="2024-06-08")] == []
    newest = list(client(server).list_splits(sort="execution_date", order="desc"))
    assert [s.execution_date for s in newest] == sorted((s["execution_date"] for s in market.splits), reverse=True)
    status, body = get_json(f"{server.base_url}/v3/reference/splits?sort=nope")
    assert status == 400 and "sort" in body["error"]
    status, body = get_json(f"{server.base_url}/v3/reference/splits?reverse_split=maybe")
    assert status == 400 and "reverse_split" in body["error"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_flat_file_faults_through_the_control_endpoint():
    from botocore.exceptions import ClientError

    m = Market(seed=11, n_tickers=30, days=20)
    day, other = m.trading_days[-1], m.trading_days[-2]
    with SandboxRestServer(m, api_key=KEY) as rest, SandboxS3(m) as s3:
        def post(obj: object) -> tuple[int, dict]:
            req = urllib.request.Request(rest.base_url + "/_sandbox/flatfiles", data=json.dumps(obj).encode(),
                                         method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        assert post({"action": "allow"})[0] == 404  # no bucket given to this server
        rest.flatfiles = s3
        c = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name="us-east-1",
                         aws_access_key_id="any", aws_secret_access_key="any")

        def body(d: date) -> bytes:
            return c.get_object(Bucket="flatfiles", Key=m.flat_file_key(d))["Body"].read()

        status, out = post({"action": "preliminary", "date": day.isoformat()})
        assert status == 200 and body(day) == m.preliminary_flat_file_csv_gz(day) != m.flat_file_csv_gz(day)
        final_etag = post({"action": "final", "date": day.isoformat()})[1]["etag"]
        assert final_etag != out["etag"] and body(day) == m.flat_file_csv_gz(day)

        status, out = post([{"action": "forbid", "dates": [other.isoformat()]}, {"action": "forbid_listing"}])
        assert status == 200 and out == {"forbidden": [m.flat_file_key(other)], "listing_forbidden": True}
        for call in (lambda: body(other), lambda: c.list_objects_v2(Bucket="flatfiles", Prefix=s3.prefix)):
            with pytest.raises(ClientError) as refused:
                call()
            assert refused.value.response["Error"]["Code"] in ("AccessDenied", "403")
        assert body(day) == m.flat_file_csv_gz(day)  # other days are still served
        assert post({"action": "allow"})[1] == {"forbidden": [], "listing_forbidden": False}
        assert body(other) == m.flat_file_csv_gz(other)

        post({"action": "delete", "date": other.isoformat()})
        with pytest.raises(c.exceptions.NoSuchKey):
            body(other)
        status, out = post({"action": "halt"})
        assert status == 400 and "unknown flat-file action 'halt'" in out["error"]
        assert post({"action": "forbid"})[0] == 400 and post({"action": "final", "date": "soon"})[0] == 400


def test_hostile_faults_through_the_control_endpoint(server: SandboxRestServer):
    """body, reshape and patch serve a proxy's corruptions; tamper hand-edits a day file."""
    def post(obj: object) -> int:
        req = urllib.request.Request(server.base_url + "/_sandbox/faults", data=json.dumps(obj).encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    chain = server.base_url + "/v3/snapshot/options/AAPL?limit=5"
    try:
        assert post({"kind": "body", "body": "<html>oops</html>", "symbol": "AAPL"}) == 200
        assert get(chain)[0] == 200 and get(chain)[2] != b"<html>oops</html>"  # once, then the page
        server.faults.clear()
        assert post({"kind": "body", "body": "<html>oops</html>", "symbol": "AAPL", "times": 1}) == 200
        assert get(chain)[2] == b"<html>oops</html>"
        assert post({"kind": "reshape", "fields": {"next_url": "@evil.example/x", "results": {"a": 1}}}) == 200
        status, page = get_json(chain)
        assert status == 200 and page["next_url"] == "@evil.example/x" and page["results"] == {"a": 1}
        assert post([{"kind": "patch", "field": "open_interest", "value": 1e300},
                     {"kind": "patch", "field": "day.volume", "value": -1, "index": 1}]) == 200
        assert get_json(chain)[1]["results"][0]["open_interest"] == 1e300  # one patch per page, in order
        assert get_json(chain)[1]["results"][1]["day"]["volume"] == -1
        clean = get_json(chain)[1]["results"]
        assert clean[0]["open_interest"] != 1e300 and clean[1]["day"]["volume"] != -1  # each fired once
        assert post({"kind": "patch", "value": 1}) == 400 and post({"kind": "reshape", "fields": 3}) == 400
    finally:
        server.faults.clear()


def test_a_fault_after_some_requests_fires_on_a_later_page(server: SandboxRestServer):
    """after: the first matching requests pass, so a list's second page can be the bad one."""
    chain = server.base_url + "/v3/snapshot/options/AAPL?limit=5"
    try:
        server.faults.apply({"kind": "body", "body": '{"status": "ERROR"}', "symbol": "AAPL", "after": 1})
        first, second, third = (get(chain)[2] for _ in range(3))
        assert json.loads(first)["status"] == "OK" and second == b'{"status": "ERROR"}'
        assert json.loads(third)["status"] == "OK"
        for bad in ({"kind": "body", "body": "x", "after": -1}, {"kind": "body", "body": "x", "after": "1"},
                    {"kind": "latency", "seconds": 1, "after": 1}):
            with pytest.raises(ValueError, match="after is a count"):
                server.faults.apply(bad)
        assert server.faults.latency_seconds == 0
    finally:
        server.faults.clear()


def test_tamper_edits_a_day_file():
    from kapman.sandbox.flatfiles import tamper

    m = Market(seed=11, n_tickers=30, days=20)
    day = m.trading_days[-1]
    first = gzip.decompress(m.flat_file_csv_gz(day)).decode().splitlines()[1].split(",")[0]
    body = tamper(m.flat_file_csv_gz(day), add_columns={"vwap": "1"}, drop_columns=["transactions"],
                  rows={first: {"close": "inf"}})
    lines = gzip.decompress(body).decode().splitlines()
    assert lines[0] == "ticker,volume,open,close,high,low,window_start,vwap"
    assert all(line.endswith(",1") for line in lines[1:])
    assert lines[1].split(",")[:4] == [first, lines[1].split(",")[1], lines[1].split(",")[2], "inf"]


def test_a_client_that_resets_its_connection_prints_no_traceback(server: SandboxRestServer,
                                                                 capfd: pytest.CaptureFixture[str]) -> None:
    """A pool closed at a run's end resets its idle connections: socketserver printed a traceback for
    each on the sandbox's stderr (seen in the options benchmark), which reads as a crash."""
    import socket
    import struct

    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"GET /v3/reference/tickers HTTP/1.1\r\nHost: x\r\n")   # a request cut short
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()                                                         # RST, not FIN
    time.sleep(0.3)
    status, _, _ = get(f"{server.base_url}/v3/reference/tickers?limit=1")
    assert status == 200                                  # still serving
    assert "Traceback" not in capfd.readouterr().err
