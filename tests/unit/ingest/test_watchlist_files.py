from __future__ import annotations

import os
from pathlib import Path

import pytest

from kapman.errors import ConfigError, InputError
from kapman.ingest.watchlist_files import MAX_REPORTED, MAX_SAMPLES, parse_file, read_directory

ROOT = Path(__file__).resolve().parents[3]


def test_comments_blanks_duplicates_and_case_kept(tmp_path: Path) -> None:
    path = tmp_path / "core.txt"
    path.write_text("# core names\n\nAAPL\nMSFT  # software\n  NVDA\nAAPL\nBRK.B\nAAp\nTpC\naapl\n")
    wl = parse_file(path)
    assert wl.watchlist_id == "core"
    # Symbols are case-sensitive: AAp (a preferred) is not AAP, aapl is not AAPL.
    assert wl.symbols == ["AAPL", "MSFT", "NVDA", "BRK.B", "AAp", "TpC", "aapl"]
    assert (wl.duplicates, wl.duplicate_samples) == (1, ["AAPL (line 6)"])
    assert wl.lines == {"AAPL": 3, "MSFT": 4, "NVDA": 5, "BRK.B": 7, "AAp": 8, "TpC": 9, "aapl": 10}


def test_a_byte_order_mark_and_windows_line_ends_are_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "core.txt"
    path.write_bytes("\ufeffAAPL\r\nMSFT # software\r\n\r\nBRK.B\r\n".encode())
    wl = parse_file(path)
    assert wl.symbols == ["AAPL", "MSFT", "BRK.B"] and wl.lines == {"AAPL": 1, "MSFT": 2, "BRK.B": 4}
    path.write_bytes("AAPL\n\ufeffMSFT\n".encode())   # a mark anywhere else is a character of the symbol
    with pytest.raises(InputError, match=f"{path}:2: invalid symbol"):
        parse_file(path)


def test_invalid_symbols_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("AAPL\nAA PL\n$TSLA\nBF-B\n")
    with pytest.raises(InputError) as info:
        parse_file(path)
    assert f"{path}:2" in info.value.message and f"{path}:3" in info.value.message
    assert f"{path}:4" in info.value.message
    assert "nothing was written" in (info.value.hint or "")


@pytest.mark.parametrize("text", ["ıbm", "ßpy", "ＡＡＰＬ", "AAPL\u0301"])
def test_non_ascii_symbols_are_refused_not_folded(tmp_path: Path, text: str) -> None:
    # str.upper() would make IBM of 'ıbm' and SSPY of 'ßpy': the ASCII check comes first.
    path = tmp_path / "core.txt"
    path.write_text(f"AAPL\n{text}\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"{path}:2: invalid symbol"):
        parse_file(path)


def test_binary_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "core.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(InputError) as info:
        parse_file(path)
    assert info.value.message == f"{path}: binary file, not a watchlist (a NUL byte)"
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"AAPL\nNESTL\xc9\n")
    with pytest.raises(InputError) as info:
        parse_file(latin)
    assert info.value.message == f"{latin}:2: not UTF-8 text (byte 0xc9)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "core.txt"
    path.write_text("AAPL\n")
    path.chmod(0)
    with pytest.raises(InputError, match=f"{path}: cannot read the file: Permission denied"):
        parse_file(path)


def test_unreadable_path_is_one_line(tmp_path: Path) -> None:
    # A directory named like a watchlist cannot be read as one, even by root.
    path = tmp_path / "core.txt"
    path.mkdir()
    with pytest.raises(InputError, match=f"{path}: cannot read the file: Is a directory"):
        parse_file(path)


def test_huge_file_of_bad_lines_gives_a_capped_message(tmp_path: Path) -> None:
    path = tmp_path / "core.txt"
    path.write_text("$X\n" * 100_000)
    with pytest.raises(InputError) as info:
        parse_file(path)
    assert info.value.message.count("invalid symbol") == MAX_REPORTED
    assert info.value.message.endswith(f"... and {100_000 - MAX_REPORTED} more")


def test_huge_file_of_duplicates_keeps_a_count_and_a_few_samples(tmp_path: Path) -> None:
    path = tmp_path / "core.txt"
    path.write_text("AAPL\n" * 500_000)
    wl = parse_file(path)
    assert wl.symbols == ["AAPL"] and wl.duplicates == 499_999
    assert wl.duplicate_samples == [f"AAPL (line {n})" for n in range(2, 2 + MAX_SAMPLES)]


def test_file_name_must_be_an_id(tmp_path: Path) -> None:
    path = tmp_path / "My List.txt"
    path.write_text("AAPL\n")
    with pytest.raises(InputError, match="lower-case id"):
        parse_file(path)
    # The Kelvin sign lower-cases to an ASCII 'k': no Unicode folding into a valid id.
    kelvin = tmp_path / "\u212aore.txt"
    kelvin.write_text("AAPL\n")
    with pytest.raises(InputError, match="lower-case id"):
        parse_file(kelvin)


def test_two_files_naming_one_watchlist_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "mvp.txt").write_text("AAPL\n")
    (tmp_path / "MVP.txt").write_text("AAPL\nMSFT\n")
    with pytest.raises(InputError) as info:
        read_directory(tmp_path)
    assert info.value.message == (f"{tmp_path}: MVP.txt and mvp.txt both name watchlist 'mvp' "
                                  "(file names are case-insensitive ids)")


def test_a_directory_without_watchlists_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"no watchlist in {tmp_path}"):
        read_directory(tmp_path)
    (tmp_path / "notes.md").write_text("AAPL\n")
    (tmp_path / "sub.txt").mkdir()
    with pytest.raises(ConfigError, match="no watchlist in"):
        read_directory(tmp_path)
    (tmp_path / "core.txt").write_text("# nothing yet\n\n")
    with pytest.raises(ConfigError, match="hold no symbol"):
        read_directory(tmp_path)
    with pytest.raises(ConfigError, match="watchlist directory not found"):
        read_directory(tmp_path / "missing")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable directories")
def test_an_unreadable_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "core.txt").write_text("AAPL\n")
    tmp_path.chmod(0o300)     # listable by nobody; Path.glob would silently find nothing
    try:
        with pytest.raises(ConfigError, match="cannot read the watchlist directory .*Permission denied"):
            read_directory(tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_shipped_mvp_watchlist_is_realistic() -> None:
    lists = read_directory(ROOT / "data" / "watchlists")
    mvp = next(w for w in lists if w.watchlist_id == "mvp")
    assert 120 <= len(mvp.symbols) <= 200 and not mvp.duplicates
    assert {"AAPL", "NVDA", "ORCL", "SPY", "QQQ"} <= set(mvp.symbols)
    assert mvp.source == "data/watchlists/mvp.txt"


def test_permission_errors_are_one_line_even_when_running_as_root(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "core.txt").write_text("AAPL\n")

    def denied(self: Path, *args: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    with monkeypatch.context() as m:
        m.setattr(Path, "read_bytes", denied)
        with pytest.raises(InputError, match=f"{tmp_path / 'core.txt'}: cannot read the file: Permission denied"):
            read_directory(tmp_path)
    monkeypatch.setattr(Path, "iterdir", denied)
    with pytest.raises(ConfigError, match=f"cannot read the watchlist directory {tmp_path}: Permission denied"):
        read_directory(tmp_path)


@pytest.mark.parametrize("empty", ["", " "])
def test_an_empty_dir_is_refused_not_read_as_the_working_directory(
        empty: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``--dir "$UNSET"`` took the working directory's notes.txt for the only watchlist and deactivated
    every list the files define."""
    from scripts import ingest_watchlists

    (tmp_path / "notes.txt").write_text("AAPL\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:   # before any database is asked
        ingest_watchlists.main(["--dir", empty, "--db-url", "postgresql://nobody@127.0.0.1:1/none"])
    assert done.value.code == 2 and capsys.readouterr().err.splitlines()[-1].endswith(
        "error: argument --dir: is empty; name a directory, or leave --dir out for KAPMAN_WATCHLISTS_DIR or "
        "data/watchlists")
