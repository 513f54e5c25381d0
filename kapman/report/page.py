"""One HTML document: figures, tables; same input, same bytes.

A single page is self-contained (plotly.js inlined); a watchlist's pages and the warehouse page
load plotly.js from one file written beside them (:func:`write_plotly`), so 150 pages carry the
4.8 MB library once rather than 150 times.  Either way nothing is fetched from the network.
Nothing on the page depends on the time it was written or on a random id, so two renders of the
same data are byte-identical.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import stat
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

from plotly.offline import get_plotlyjs
from plotly.utils import PlotlyJSONEncoder

from kapman.errors import UsageError
from kapman.report.charts import Figure
from kapman.report.keyvalues import KeyValue

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

CSS = """
body { font: 14px/1.4 system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 16px 24px; color: #0f172a; background: #fff; }
h1 { font-size: 22px; margin: 4px 0 2px; } h2 { font-size: 16px; margin: 22px 0 6px; }
.sub { color: #64748b; margin-bottom: 12px; } .warn { color: #b45309; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e2e8f0; text-align: left; }
td.num { text-align: right; } th { background: #f8fafc; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th:after { content: ' \\2195'; color: #cbd5e1; }
.kv { display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }
.chart { margin: 8px 0 18px; border: 1px solid #e2e8f0; border-radius: 6px; }
a { color: #2563eb; text-decoration: none; } a:hover { text-decoration: underline; }
"""

#: Click a header to sort by it (numbers by their data-sort value); click again to reverse.
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
      function key(row) { var c = row.cells[col], v = c.dataset.sort; return v === undefined ? c.textContent : v; }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
        if (x === '' && y !== '') return 1; if (y === '' && x !== '') return -1;
        if (!isNaN(nx) && !isNaN(ny)) return dir * (nx - ny);
        return dir * x.localeCompare(y);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


@cache
def plotly_js() -> str:
    return get_plotlyjs()


def plotly_file_name() -> str:
    """``plotly-<version>.min.js``: a new plotly never reuses an older file of the same directory."""
    import plotly

    return f"plotly-{plotly.__version__}.min.js"


def write_plotly(directory: Path) -> str:
    """plotly.js once in ``directory`` (left as it is when already there); the name pages load it by."""
    name = plotly_file_name()
    path = directory / name
    if not path.is_file() or path.stat().st_size != len(plotly_js().encode()):
        write(path, plotly_js())
    return name


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def to_json(value: object) -> str:
    """Sorted keys (same data, same bytes); NaN and dates as plotly.js expects them; safe inside a
    script element."""
    return json.dumps(value, cls=PlotlyJSONEncoder, sort_keys=True, separators=(",", ":")).replace("</", "<\\/")


def chart(div_id: str, figure: Figure) -> str:
    """A figure's div, with a fixed id, and the script that draws it."""
    height = figure["layout"].get("height", 400)
    call = f"Plotly.newPlot({to_json(div_id)}, {to_json(figure['data'])}, {to_json(figure['layout'])}, " \
           f"{to_json(PLOTLY_CONFIG)});"
    return (f'<div class="chart"><div id="{esc(div_id)}" class="plotly-graph-div" '
            f'style="height:{int(height)}px; width:100%;"></div><script>{call}</script></div>')


def table(headers: Sequence[str], rows: Iterable[Sequence[tuple[str, object | None]]], *,
          sortable: bool = False, numeric: Sequence[bool] = ()) -> str:
    """Rows of (cell html, sort key or None); numeric columns are right-aligned."""
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for n, (cell, key) in enumerate(row):
            attrs = ' class="num"' if n < len(numeric) and numeric[n] else ""
            if key is not None:
                attrs += f' data-sort="{esc(key)}"'
            cells.append(f"<td{attrs}>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def key_value_tables(values: list[KeyValue]) -> str:
    """One small two-column table per group, side by side."""
    groups: dict[str, list[KeyValue]] = {}
    for kv in values:
        groups.setdefault(kv.group, []).append(kv)
    tables = [table([group, ""], ([(esc(kv.label), None), (esc(kv.text), None)] for kv in kvs),
                    numeric=(False, True)) for group, kvs in groups.items()]
    return '<div class="kv">' + "".join(tables) + "</div>"


def document(title: str, body: str, *, charts: bool = True, sortable: bool = False,
             plotly_src: str | None = None) -> str:
    """The whole page; plotly.js only when the page has charts: loaded from ``plotly_src`` (a file beside
    the page, :func:`write_plotly`) or else inlined."""
    if not charts:
        scripts = ""
    elif plotly_src:
        scripts = f'<script src="{esc(plotly_src)}"></script>'
    else:
        scripts = f"<script>{plotly_js()}</script>"
    tail = f"<script>{SORT_JS}</script>" if sortable else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n{scripts}\n</head>\n"
            f"<body>\n{body}\n{tail}\n</body>\n</html>\n")


def writable(path: Path) -> Path:
    """Where a page for ``path`` may be written: ``path`` itself when it is absent or a regular file,
    the file a symlink leads to (followed, the link kept) under the same rule; anything else
    (a directory, a device such as /dev/full, a FIFO, a socket) is refused."""
    shown = path
    if path.is_symlink():
        path = path.resolve()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise UsageError(f"cannot write {shown}: {exc.strerror or exc}") from None
    if stat.S_ISREG(mode):
        return path
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")
    via = f" (the link {shown} leads to {path})" if shown != path else ""
    raise UsageError(f"refusing to write a page over {path}{via}: it is {kind}",
                     hint="--out takes a regular file (replaced atomically) or a directory to write it into")


def write(path: Path, text: str) -> Path:
    """Write atomically: a reader never sees half a page.  Only over a regular file (``writable``)."""
    path = writable(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def target(out: Path | None, default: Path, *, directory: bool = False) -> Path:
    """``--out``: a file as given, or the default name inside a directory given (``directory``: one named with a
    trailing '/', which may not exist yet)."""
    if out is None:
        return default
    return out / default.name if directory or out.is_dir() else out
