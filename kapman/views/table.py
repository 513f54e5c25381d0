"""A plain text table: a header line, then one line a row; text left-aligned, numbers right-aligned."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any


def cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z").replace("+0000", "Z")
    return value.isoformat() if isinstance(value, date) else str(value)


def plain(value: Any) -> Any:
    """A JSON-ready value: NaN as null, dates and times in ISO form."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.isoformat() if isinstance(value, date | datetime) else value


def table_text(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    cells = [[cell(r[n]) for n in names] for r in rows]
    numeric = [all(isinstance(r[n], int | float) or r[n] is None for r in rows) for n in names]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                                strict=True))).rstrip()
              for row in cells]
    return "\n".join(lines)
