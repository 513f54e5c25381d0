"""Read ``<watchlist_id>.txt`` files: one symbol per line, ``#`` starts a comment.

Symbols are kept exactly as written (they are case-sensitive: ``AAp`` is not ``AAP``) and must
be ASCII ticker symbols; anything wrong in any file stops the run before anything is written, with
one line per problem naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kapman.config import PROJECT_ROOT
from kapman.errors import ConfigError, InputError
from kapman.symbols import is_symbol

WATCHLIST_ID = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}", re.ASCII)
#: Problems listed in one error before the rest are only counted (a hostile file can hold millions).
MAX_REPORTED = 10
#: Repeated symbols kept as samples per list (the count is always exact).
MAX_SAMPLES = 10


@dataclass
class WatchlistFile:
    watchlist_id: str
    source: str
    symbols: list[str]
    #: symbol -> its (first) line number, to name the line in later messages.
    lines: dict[str, int] = field(default_factory=dict)
    #: How many lines repeated an earlier symbol, and the first few as "SYMBOL (line N)".
    duplicates: int = 0
    duplicate_samples: list[str] = field(default_factory=list)


def source_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return path.name


def _problems(path: Path, problems: list[str]) -> InputError:
    shown = problems[:MAX_REPORTED]
    more = f"; ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
    return InputError("; ".join(shown) + more, hint=f"fix {path.name}; nothing was written")


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror or exc}", source=str(path),
                         hint="make it readable (or remove it); nothing was written") from None
    if b"\0" in data:
        raise InputError("binary file, not a watchlist (a NUL byte)", source=str(path),
                         hint="a watchlist is UTF-8 text, one symbol per line; nothing was written")
    try:
        return data.decode("utf-8-sig")  # an editor's byte-order mark is not part of the first symbol
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", source=str(path), line=line,
                         hint="a watchlist is UTF-8 text, one symbol per line; nothing was written") from None


def watchlist_id(path: Path) -> str:
    """The file's stem, lower-cased only when it is ASCII (no Unicode folding into a valid id)."""
    stem = path.stem
    wid = stem.lower() if stem.isascii() else stem
    if not WATCHLIST_ID.fullmatch(wid):
        raise InputError("file name must be <watchlist_id>.txt with a lower-case id (a-z, 0-9, _ or -)",
                         source=str(path))
    return wid


def parse_file(path: Path) -> WatchlistFile:
    wl = WatchlistFile(watchlist_id(path), source_name(path), [])
    problems: list[str] = []
    for number, raw in enumerate(_read_text(path).splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        if not is_symbol(text):
            problems.append(f"{path}:{number}: invalid symbol {text[:40]!r} "
                            "(ASCII letters, digits and '.', starting with a letter; an index as I:SPX)")
            continue
        if text in wl.lines:
            wl.duplicates += 1
            if len(wl.duplicate_samples) < MAX_SAMPLES:
                wl.duplicate_samples.append(f"{text} (line {number})")
            continue
        wl.lines[text] = number
        wl.symbols.append(text)
    if problems:
        raise _problems(path, problems)
    return wl


def _txt_files(directory: Path) -> list[Path]:
    """The directory's ``*.txt`` files; unlike ``Path.glob`` an unreadable directory is an error."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"the watchlist directory {directory} is a file: name the directory that holds "
                          "<watchlist_id>.txt files", hint="nothing was written")
    if not directory.is_dir():
        raise ConfigError(f"watchlist directory not found: {directory}",
                          hint="create data/watchlists/<name>.txt or set KAPMAN_WATCHLISTS_DIR")
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise ConfigError(f"cannot read the watchlist directory {directory}: {exc.strerror or exc}",
                          hint="make it readable; nothing was written") from None
    named = [p for p in entries if p.suffix == ".txt"]
    for path in named:
        # A link to nothing (an unmounted share), a FIFO or a device: read as a deleted file, it would
        # deactivate its list (no option snapshots tonight).  A directory is not a watchlist's name.
        if not path.is_file() and not path.is_dir() and WATCHLIST_ID.fullmatch(path.stem):
            raise ConfigError(f"{path} is not a readable file ({_kind(path)})",
                              hint="restore the file, or delete the name to deactivate its list; nothing was written")
    return [p for p in named if p.is_file()]


def _kind(path: Path) -> str:
    """What a name in the watchlist directory is when it is not a file to read."""
    if path.is_symlink() and not path.exists():
        return f"a link to {path.readlink()}, which does not exist"
    kinds = ((Path.is_fifo, "a FIFO"), (Path.is_socket, "a socket"), (Path.is_char_device, "a device"),
             (Path.is_block_device, "a device"))
    return next((name for test, name in kinds if test(path)), "not a regular file")


def read_directory(directory: Path) -> list[WatchlistFile]:
    """Every watchlist of ``directory``; none at all (or no symbol in any) is an error, so an empty
    or misconfigured directory never deactivates every list."""
    paths = _txt_files(directory)
    if not paths:
        raise ConfigError(f"no watchlist in {directory} (no <watchlist_id>.txt file)",
                          hint="point --dir or KAPMAN_WATCHLISTS_DIR at the watchlist files; nothing was written")
    files = [parse_file(p) for p in paths]
    by_id: dict[str, list[str]] = {}
    for path, wl in zip(paths, files, strict=True):
        by_id.setdefault(wl.watchlist_id, []).append(path.name)
    clashes = {wid: names for wid, names in by_id.items() if len(names) > 1}
    if clashes:
        wid, names = sorted(clashes.items())[0]
        raise InputError(f"{' and '.join(names)} both name watchlist {wid!r} (file names are case-insensitive ids)",
                         source=str(directory), hint="rename or remove one of them; nothing was written")
    if not any(wl.symbols for wl in files):
        raise ConfigError(f"the watchlist files in {directory} hold no symbol "
                          f"({', '.join(p.name for p in paths[:MAX_REPORTED])})",
                          hint="add symbols (one per line) or point --dir at the right directory; nothing was written")
    return files
