"""S3Source against a bucket having a bad day: a listing that never ends (a truncated page without
a new token), an object without end."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from kapman.config import load_settings
from kapman.errors import ProviderError
from kapman.providers import flatfiles
from kapman.providers.flatfiles import FileRef, S3Source

PREFIX = "us_stocks_sip/day_aggs_v1/2025/12/"


def obj(day: int) -> dict[str, Any]:
    return {"Key": f"{PREFIX}2025-12-{day:02d}.csv.gz", "ETag": f'"e{day}"', "Size": 10}


class Listing:
    """Answers list_objects_v2 from pages keyed by the continuation token ("" for the first)."""

    def __init__(self, pages: dict[str, dict[str, Any]]) -> None:
        self.pages, self.asked = pages, []

    def list_objects_v2(self, **kw: Any) -> dict[str, Any]:
        self.asked.append(kw.get("ContinuationToken", ""))
        if len(self.asked) > 50:
            raise AssertionError("listed forever")
        return self.pages[self.asked[-1]]


def source(listing: Any, monkeypatch: pytest.MonkeyPatch) -> S3Source:
    monkeypatch.setenv("FLATFILES_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("FLATFILES_SECRET_ACCESS_KEY", "secret")
    s3 = S3Source(load_settings(Path("/nonexistent")))
    s3._local.client = listing
    return s3


def test_a_listing_in_pages_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    listing = Listing({"": {"Contents": [obj(1)], "IsTruncated": True, "NextContinuationToken": "t1"},
                       "t1": {"Contents": [obj(2)], "IsTruncated": False}})
    refs = source(listing, monkeypatch).list_files(date(2025, 12, 1), date(2025, 12, 31))
    assert [r.etag for r in refs] == ["e1", "e2"] and listing.asked == ["", "t1"]


@pytest.mark.parametrize(("pages", "said"), [
    ({"": {"Contents": [obj(1)], "IsTruncated": True}}, "no"),
    ({"": {"Contents": [obj(1)], "IsTruncated": True, "NextContinuationToken": "t1"},
      "t1": {"Contents": [obj(2)], "IsTruncated": True, "NextContinuationToken": "t1"}}, "the same"),
])
def test_a_truncated_listing_without_a_new_token_stops(pages: dict, said: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """It listed the same page again, forever, each time adding its files to the refs."""
    listing = Listing(pages)
    with pytest.raises(ProviderError) as info:
        source(listing, monkeypatch).list_files(date(2025, 12, 1), date(2025, 12, 31))
    assert info.value.message == (f"list {PREFIX}: the listing is truncated but gives {said} continuation token; "
                                  "stopping")
    assert len(listing.asked) <= 2


class Body:
    """A streaming body that reads as much as asked, of an object ``size`` bytes long."""

    def __init__(self, size: int) -> None:
        self.size, self.asked = size, []

    def read(self, amt: int | None = None) -> bytes:
        self.asked.append(amt)
        return b"x" * min(self.size, amt if amt is not None else self.size)


class Objects:
    def __init__(self, size: int) -> None:
        self.body = Body(size)

    def get_object(self, **kw: Any) -> dict[str, Any]:
        return {"Body": self.body}


def test_an_object_past_the_largest_is_refused_without_reading_it_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """It was read whole into memory, however large."""
    monkeypatch.setattr(flatfiles, "MAX_OBJECT_BYTES", 1000)
    ref = FileRef(f"{PREFIX}2025-12-19.csv.gz", date(2025, 12, 19), "e", 10)
    big = Objects(10**9)
    with pytest.raises(ProviderError) as info:
        source(big, monkeypatch).read(ref)
    assert info.value.message == f"{ref.key}: the object passes 0 MiB (a day file is about 200 KB); not read further"
    assert big.body.asked == [1001] and not info.value.transient
    assert source(Objects(1000), monkeypatch).read(ref) == b"x" * 1000


def test_a_body_that_breaks_off_fails_its_file_as_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    """The botocore error of the body's read went past the file's handling and ended the run."""
    from botocore.exceptions import ResponseStreamingError

    class Broken(Body):
        def read(self, amt: int | None = None) -> bytes:
            raise ResponseStreamingError(error="connection reset")

    objects = Objects(10)
    objects.body = Broken(10)
    ref = FileRef(f"{PREFIX}2025-12-19.csv.gz", date(2025, 12, 19), "e", 10)
    with pytest.raises(ProviderError) as info:
        source(objects, monkeypatch).read(ref)
    assert info.value.transient and info.value.message == f"{ref.key}: ResponseStreamingError"
