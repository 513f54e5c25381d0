"""The flattened columns of ``daily_snapshots``: every stored key as one typed column, named as the docs name it.

* A2 technical indicators (``technical_indicators_json``): their dotted path, ``momentum.rsi.rsi``
  (docs/a2_indicators.md), float64.
* A2 price metrics (``price_metrics_json``): their key, ``rvol``, ``vsi``, ``hv``, ``close``, float64.
* A3 dealer metrics (``dealer_metrics_json``): their key, ``gex_net``, ``position`` ...
  (docs/a3_dealer_metrics.md); the scalars only (walls, profile and counts stay in the JSON),
  plus ``dealer_snapshot_time``, the option snapshot they were computed from.

The one catalogue the data API, the screener and the export read, so a column has one name everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
from psycopg import sql

from kapman.data.copy import epoch_us
from kapman.metrics.indicators import TECHNICAL_KEYS
from kapman.metrics.price import PRICE_KEYS


@dataclass(frozen=True)
class Column:
    name: str
    #: the SQL expression over the row ``d`` of DETOASTED (text, as COPY prints it)
    expr: str
    type: pa.DataType
    #: a2 (technical or price) or a3
    family: str
    #: the document it is read from: ta, pm or dm (detoasted)
    document: str = ""


# Each document is read (decompressed) once per row: ``#>>`` on the stored column would decompress the whole
#: document again for every key (~90 times a row, 20x slower). ``|| '{}'`` returns the operand detoasted and
#: ``OFFSET 0`` keeps the subquery from being folded into the outer query.
_DOCUMENTS = {"ta": "technical_indicators_json", "pm": "price_metrics_json", "dm": "dealer_metrics_json"}


def detoasted(chosen: Iterable[Column], where: sql.Composable) -> sql.Composed:
    """The rows of ``daily_snapshots`` matching ``where`` (over ``s``, the table, and ``t``, tickers), ordered
    by symbol and time, with the documents ``chosen`` reads, each as ``d.ta``, ``d.pm``, ``d.dm``.

    The rows are ordered while they are narrow (the stored documents are pointers until read), so the sort
    moves a few bytes a row, not the detoasted documents or the extracted columns."""
    needed = [alias for alias in _DOCUMENTS if alias in {c.document for c in chosen}]
    stored = "".join(f", s.{_DOCUMENTS[alias]} AS {alias}_stored" for alias in needed)
    documents = "".join(f", k.{alias}_stored || '{{}}' AS {alias}" for alias in needed)
    return (sql.SQL("SELECT k.symbol, k.time, k.dealer_snapshot_time" + documents + " FROM ("
                    "SELECT t.symbol, s.time, s.dealer_snapshot_time" + stored +
                    " FROM public.daily_snapshots s JOIN public.tickers t ON t.id = s.ticker_id WHERE ")
            + where + sql.SQL(" ORDER BY t.symbol, s.time) k"))


def _path(document: str, name: str) -> str:
    return f"d.{document} #>> '{{{name.replace('.', ',')}}}'"


_A3_TEXT = ("status", "status_reason", "position", "gamma_flip_reason", "spot_source")
_A3_DATE = ("max_pain_expiration", "atm_iv_expiration")
#: the order the A3 columns come in
A3_KEYS: tuple[str, ...] = ("status", "status_reason", "position", "gex_ratio", "gex_net", "gex_gross", "gamma_flip",
                            "gamma_flip_distance_pct", "gamma_flip_crossings", "gamma_flip_reason", "call_wall",
                            "put_wall", "max_pain", "max_pain_expiration", "put_call_oi_ratio",
                            "put_call_volume_ratio", "dex_net", "atm_iv", "atm_iv_expiration", "spot", "spot_source")


def _a3_type(key: str) -> pa.DataType:
    if key in _A3_TEXT:
        return pa.string()
    if key in _A3_DATE:
        return pa.date32()
    return pa.int64() if key == "gamma_flip_crossings" else pa.float64()


A2_COLUMNS: tuple[Column, ...] = (
    tuple(Column(k, _path("ta", k), pa.float64(), "a2", "ta") for k in TECHNICAL_KEYS)
    + tuple(Column(k, _path("pm", k), pa.float64(), "a2", "pm") for k in PRICE_KEYS))
A3_COLUMNS: tuple[Column, ...] = (
    tuple(Column(k, _path("dm", k), _a3_type(k), "a3", "dm") for k in A3_KEYS)
    + (Column("dealer_snapshot_time", epoch_us("d.dealer_snapshot_time"),
              pa.timestamp("us", tz="UTC"), "a3"),))
COLUMNS: dict[str, Column] = {c.name: c for c in A2_COLUMNS + A3_COLUMNS}
#: The values ``position`` takes (docs/a3_dealer_metrics.md).
POSITIONS = ("long_gamma", "short_gamma", "neutral")


def leaf_names() -> dict[str, str]:
    """Short names: an A2 path's last part where no other column ends the same (``rsi`` for
    ``momentum.rsi.rsi``); the screener accepts them beside the full names."""
    counts: dict[str, list[str]] = {}
    for name in COLUMNS:
        counts.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    return {leaf: names[0] for leaf, names in counts.items() if len(names) == 1 and leaf != names[0]}


def resolve(name: str) -> str:
    """The column a name means (full or short); an unknown name is a KeyError carrying the closest names."""
    if name in COLUMNS:
        return name
    short = leaf_names()
    if name in short:
        return short[name]
    raise KeyError(closest(name))


def closest(name: str, limit: int = 3) -> list[str]:
    """The names nearest to ``name``, compared without case (``RSI`` is near ``rsi``, which the name must be)."""
    candidates = {c.lower(): c for c in list(COLUMNS) + list(leaf_names())}
    near = [candidates[c] for c in difflib.get_close_matches(name.lower(), candidates, n=limit, cutoff=0.5)]
    return [short if short in COLUMNS else f"{short} ({leaf_names()[short]})" for short in near]
