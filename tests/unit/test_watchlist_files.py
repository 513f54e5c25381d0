from __future__ import annotations

from pathlib import Path

import pytest

from kapman.errors import InputError
from kapman.ingest.watchlists import parse_file, read_directory

ROOT = Path(__file__).resolve().parents[2]


def test_comments_blanks_case_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "core.txt"
    path.write_text("# core names\n\naapl\nMSFT  # software\n  nvda\nAAPL\nbrk.b\n")
    wl = parse_file(path)
    assert wl.watchlist_id == "core"
    assert wl.symbols == ["AAPL", "MSFT", "NVDA", "BRK.B"]
    assert wl.duplicates == ["AAPL"]


def test_invalid_symbols_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("AAPL\nAA PL\n$TSLA\n")
    with pytest.raises(InputError) as info:
        parse_file(path)
    assert f"{path}:2" in info.value.message and f"{path}:3" in info.value.message
    assert "nothing was written" in (info.value.hint or "")


def test_file_name_must_be_an_id(tmp_path: Path) -> None:
    path = tmp_path / "My List.txt"
    path.write_text("AAPL\n")
    with pytest.raises(InputError, match="lower-case id"):
        parse_file(path)


def test_shipped_mvp_watchlist_is_realistic() -> None:
    lists = read_directory(ROOT / "data" / "watchlists")
    mvp = next(w for w in lists if w.watchlist_id == "mvp")
    assert 120 <= len(mvp.symbols) <= 200 and not mvp.duplicates
    assert {"AAPL", "NVDA", "ORCL", "SPY", "QQQ"} <= set(mvp.symbols)
    assert mvp.source == "data/watchlists/mvp.txt"
