"""The report pages in a real browser: headless Chromium opens each one from disk, with no network.

Each test fails on any console error, uncaught exception or failed load, checks that every chart
drew its traces (an SVG with marks for each trace), and saves a full-page screenshot next to the
pages (the path is printed; also copied to KAPMAN_SCREENSHOT_DIR when set).  Data: three
watchlist symbols taken through the real ingest, A2 and A3 steps on the sandbox market.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kapman.providers.http import PolygonHTTP
from kapman.providers.polygon import PolygonClient
from kapman.report import page, symbol, warehouse
from kapman.report.data import load_symbol_day
from kapman.report.watchlist import write_watchlist
from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer
from tests.support import database, reportdb
from tests.support.browser import Page, chromium, find_chromium
from tests.support.symbolday import symbol_day

pytestmark = pytest.mark.integration

#: Per chart div: traces in its figure, traces drawn, marks (non-empty paths, points, heat map images).
CHARTS_JS = """Array.from(document.querySelectorAll('.plotly-graph-div')).map(d => ({
  id: d.id, traces: (d.data || []).length, svg: d.querySelectorAll('svg.main-svg').length,
  drawn: d.querySelectorAll('g.trace, g.hm').length,
  marks: d.querySelectorAll('g.trace path[d]:not([d=""]):not([d="M0,0Z"]), g.trace .point, g.hm image').length}))"""


@pytest.fixture(scope="module")
def browser() -> str:
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium: install the distribution's chromium package (./dev.sh setup does)")
    return executable


@pytest.fixture(scope="module")
def pages(new_rebuilt_db: database.NewRebuiltDb, rest_server: SandboxRestServer, market: Market,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The AAPL report, the watchlist index and the warehouse page, written from one database."""
    out = tmp_path_factory.mktemp("report-pages")
    http = PolygonHTTP(rest_server.base_url, rest_server.api_key, rate_limit=1000, connect_timeout=2,
                       read_timeout=5, max_retries=4)
    client = PolygonClient(http)
    mp = pytest.MonkeyPatch()
    try:
        with new_rebuilt_db("reportui_") as url, psycopg.connect(url, autocommit=True) as conn:
            snapshot_days = reportdb.build(conn, url, market, rest_server, client, tmp_path_factory.mktemp("lists"))
            mp.setenv("KAPMAN_NOW", str(snapshot_days[-1]))
            day = load_symbol_day(conn, "AAPL")
            listed = write_watchlist(conn, reportdb.WATCHLIST, None, out / "core")
            store, _ = warehouse.write_warehouse(conn, out / "warehouse.html")
        yield {"day": day, "symbol": page.write(out / "AAPL.html", symbol.render(day)), "index": listed.index,
               "warehouse": store, "out": out}
    finally:
        mp.undo()
        client.close()


def open_page(executable: str, path: Path) -> Iterator[Page]:
    with chromium(executable) as tab:
        tab.open(path.as_uri())
        yield tab


def check_clean(tab: Page) -> None:
    assert tab.errors == [], tab.errors
    remote = [u for u in tab.requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert remote == [], f"the page fetched {remote}"


def check_charts(tab: Page, expected: list[str]) -> list[dict[str, Any]]:
    charts = tab.evaluate(CHARTS_JS)
    assert [c["id"] for c in charts] == expected
    for c in charts:
        assert c["svg"] >= 1 and c["traces"] >= 1, c
        assert c["drawn"] == c["traces"], f"{c['id']}: {c['drawn']} of {c['traces']} traces drawn"
        assert c["marks"] >= c["traces"], c
    return charts


def screenshot(tab: Page, path: Path) -> None:
    """Beside the page, and also into KAPMAN_SCREENSHOT_DIR when set (to keep them from CI)."""
    tab.screenshot(path)
    assert path.stat().st_size > 20_000
    keep = os.environ.get("KAPMAN_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    print(f"screenshot: {path}")


def test_symbol_report_renders_every_chart_offline(browser: str, pages: dict[str, Any]) -> None:
    for tab in open_page(browser, pages["symbol"]):
        charts = {c["id"]: c for c in check_charts(tab, ["price", "gex-strike", "gex-expiry", "history"])}
        day = pages["day"]
        # one candle per bar: each draws a box path
        candles = tab.evaluate("document.querySelectorAll('#price g.trace.boxes path').length")
        assert candles == len(day.bars.dates)
        bars = tab.evaluate("document.querySelectorAll('#gex-strike g.trace.bars path').length")
        assert bars == len(day.dealer["strike_profile"]["strikes"])
        levels = tab.evaluate("Array.from(document.querySelectorAll('#gex-strike .legendtext'))"
                              ".map(t => t.textContent)")
        assert {lv.rsplit(" ", 1)[0] for lv in levels} == {"spot", "gamma flip", "call wall", "put wall",
                                                           "max pain"}
        assert charts["history"]["traces"] == 3
        check_clean(tab)
        screenshot(tab, pages["out"] / "AAPL.png")


def test_watchlist_index_sorts_and_links(browser: str, pages: dict[str, Any]) -> None:
    order_js = "Array.from(document.querySelectorAll('tbody tr td:first-child')).map(td => td.textContent)"
    for tab in open_page(browser, pages["index"]):
        assert tab.evaluate(order_js) == sorted(reportdb.SYMBOLS)
        header = "Array.from(document.querySelectorAll('th')).find(th => th.textContent === 'RSI 14').click()"
        rsi_js = "Array.from(document.querySelectorAll('tbody tr td:nth-child(7)')).map(td => td.dataset.sort)"
        tab.evaluate(header)
        ascending = [float(v) for v in tab.evaluate(rsi_js)]
        assert ascending == sorted(ascending)
        tab.evaluate(header)
        assert [float(v) for v in tab.evaluate(rsi_js)] == sorted(ascending, reverse=True)
        links = tab.evaluate("Array.from(document.querySelectorAll('tbody a')).map(a => a.href)")
        assert sorted(Path(link.removeprefix("file://")).name for link in links) == [
            f"{s}.html" for s in sorted(reportdb.SYMBOLS)]
        assert all(Path(link.removeprefix("file://")).is_file() for link in links)
        check_clean(tab)
        screenshot(tab, pages["out"] / "index.png")
    # a linked page renders too
    for tab in open_page(browser, pages["index"].parent / "SPY.html"):
        check_charts(tab, ["price", "gex-strike", "gex-expiry", "history"])
        check_clean(tab)


def test_warehouse_heat_map_renders(browser: str, pages: dict[str, Any]) -> None:
    for tab in open_page(browser, pages["warehouse"]):
        check_charts(tab, ["coverage"])
        rows = tab.evaluate("Array.from(document.querySelectorAll('tbody tr td:first-child'))"
                            ".map(td => td.textContent)")
        assert rows == list(warehouse.DATASETS)
        check_clean(tab)
        screenshot(tab, pages["out"] / "warehouse.png")


def test_an_invalid_dealer_day_renders_its_notes_without_errors(browser: str, tmp_path: Path) -> None:
    """A3 INVALID (no snapshot): the price chart draws, the dealer charts say why they are empty."""
    path = page.write(tmp_path / "invalid.html", symbol.render(symbol_day("INVALID")))
    for tab in open_page(browser, path):
        check_clean(tab)
        charts = {c["id"]: c for c in tab.evaluate(CHARTS_JS)}
        assert charts["price"]["drawn"] == charts["price"]["traces"] and charts["price"]["marks"] > 0
        notes = tab.evaluate("Array.from(document.querySelectorAll('.annotation-text')).map(t => t.textContent)")
        assert "no strike profile: A3 status INVALID (no_snapshot)" in notes
        assert "no GEX by expiry for this date" in notes
        screenshot(tab, tmp_path / "invalid.png")


def test_a_ticker_without_a2_draws_candles_and_volume_without_errors(browser: str, tmp_path: Path) -> None:
    """Any ticker with bars has a page: without A2 values its empty indicator traces drew NaN paths
    ('<path> attribute d: Expected number') and 2 of 11 traces."""
    day = replace(symbol_day(), indicators={}, technical={}, price={},
                  missing={"A2": "A2 indicators: none stored for TEST"})
    path = page.write(tmp_path / "no-a2.html", symbol.render(day))
    for tab in open_page(browser, path):
        check_clean(tab)
        charts = check_charts(tab, ["price", "gex-strike", "gex-expiry", "history"])
        assert charts[0]["traces"] == 2                         # candles and volume
        screenshot(tab, tmp_path / "no-a2.png")


def test_a_page_with_a_script_error_fails_the_check(browser: str, tmp_path: Path) -> None:
    """The checks see what they must fail on: a console error and a chart without marks."""
    broken = tmp_path / "broken.html"
    broken.write_text(page.document("broken", '<div id="x" class="plotly-graph-div"></div>'
                                               "<script>console.error('boom'); undefinedCall();</script>",
                                    charts=False))
    for tab in open_page(browser, broken):
        assert any("boom" in e for e in tab.errors) and any("undefinedCall" in e for e in tab.errors)
        with pytest.raises(AssertionError):
            check_charts(tab, ["x"])

