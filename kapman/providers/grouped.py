"""Day bars from the REST API's grouped-daily endpoint: the free plan's way to the flat files' data.

``GET /v2/aggs/grouped/locale/us/market/stocks/{date}?adjusted=false`` returns the whole market's
bars of one session in one unpaginated response.  ``adjusted=false`` matches the flat files, which
carry unadjusted prices.  There is no listing and no ETag: every trading day whose session has
closed by KapMan's clock is a candidate, one request each, under the client's shared rate limiter
(the free plan allows 5 requests a minute).
"""

from __future__ import annotations

from datetime import date

from kapman import calendar, clock
from kapman.providers.flatfiles import FileRef
from kapman.providers.polygon import PolygonClient

GROUPED_PATH = "/v2/aggs/grouped/locale/us/market/stocks/{day}"
#: Ledger keys of this source: one per date, apart from any flat file's key.
KEY_PREFIX = "rest/v2/aggs/grouped/locale/us/market/stocks/"
FORMAT = "grouped-json"


class GroupedDailySource:
    """A flat-file source look-alike: one "file" per closed trading session, its body the JSON."""

    format = FORMAT
    unit = "dates"

    def __init__(self, client: PolygonClient) -> None:
        self.client = client
        self.label = "rest:" + client.http.base_url

    @property
    def requests_per_minute(self) -> float:
        return self.client.http.limiter.rate * 60

    def list_files(self, start: date, end: date) -> list[FileRef]:
        """Every trading day in [start, end] whose session has closed; the ETag is known only
        once the body is read (empty here)."""
        now = clock.now()
        return [FileRef(KEY_PREFIX + day.isoformat(), day, "", 0)
                for day in calendar.trading_days(start, end) if clock.session_close(day) <= now]

    def read(self, ref: FileRef) -> bytes:
        """The day's response body, checked as a page (a body that is not JSON, or whose results
        is not a list, is retried within the request deadline: ``PolygonHTTP.get_page``)."""
        body, _, _ = self.client.http.get_page(GROUPED_PATH.format(day=ref.day.isoformat()), {"adjusted": "false"},
                                               symbol=None, whole=True)
        return body

    def close(self) -> None:
        self.client.close()
