"""report --out writes only regular files: a page never replaces a device, a FIFO or a directory;
a symlink is followed to the file it names; a watchlist's --out is a directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kapman.errors import UsageError
from kapman.report import page
from kapman.report.run import ReportParams, _watchlist
from kapman.step import StepResult


def test_a_regular_file_is_replaced_atomically(tmp_path: Path) -> None:
    out = tmp_path / "a.html"
    out.write_text("old")
    assert page.write(out, "new") == out and out.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html"]  # no partial left


def test_a_fifo_is_refused_and_left_alone(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.html"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r"refusing to write a page over .*pipe.html: it is a FIFO"):
        page.write(fifo, "x")
    assert fifo.is_fifo()


def test_a_device_is_refused() -> None:
    with pytest.raises(UsageError, match="refusing to write a page over /dev/full: it is a device"):
        page.write(Path("/dev/full"), "x")
    assert Path("/dev/full").is_char_device()


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.html").mkdir()
    with pytest.raises(UsageError, match="it is a directory"):
        page.write(tmp_path / "d.html", "x")


def test_a_symlink_is_followed_to_its_file_and_kept(tmp_path: Path) -> None:
    real, link = tmp_path / "real.html", tmp_path / "link.html"
    real.write_text("old")
    link.symlink_to(real)
    assert page.write(link, "new") == real
    assert link.is_symlink() and real.read_text() == "new"


def test_a_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link.html"
    link.symlink_to("/dev/full")
    with pytest.raises(UsageError, match=r"over /dev/full \(the link .*link.html leads to /dev/full\): it is a device"):
        page.write(link, "x")
    assert link.is_symlink()


@pytest.mark.parametrize("name", ["x.html", "x.HTM"])
def test_a_watchlist_out_is_a_directory_and_says_so(tmp_path: Path, name: str) -> None:
    params = ReportParams(watchlist="mvp", out=tmp_path / name)
    with pytest.raises(UsageError, match=f"--out .*{name} names a page; --watchlist writes a directory"):
        _watchlist(None, params, StepResult("report"), None)  # type: ignore[arg-type]
    assert not (tmp_path / name).exists()
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="is not a directory; --watchlist writes a directory"):
        _watchlist(None, ReportParams(watchlist="mvp", out=tmp_path / "f"), StepResult("report"), None)  # type: ignore[arg-type]
