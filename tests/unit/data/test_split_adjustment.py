"""data.bars(adjusted=True): each symbol's bars adjusted by its own splits, whatever order the server sorts
symbols in (byte order under the C collation; en_US puts BRKA before BRK.B and AAp before AAPL)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa

from kapman.data.api import BAR_SCHEMA, _adjust


class _Splits:
    """A connection that answers the splits query with AAPL's 4:1 of 2020-08-31 and BRK.B's 2:1 of 2020-09-01."""

    def execute(self, query: str, params: Any) -> _Splits:
        return self

    def fetchall(self) -> list[tuple[str, date, float]]:
        return [("AAPL", date(2020, 8, 31), 4.0), ("BRK.B", date(2020, 9, 1), 2.0)]


def test_each_symbol_gets_its_own_splits_in_a_collation_order() -> None:
    symbols = ["AAp", "AAp", "AAPL", "AAPL", "BRKA", "BRK.B", "BRK.B"]       # as en_US orders them
    days = [date(2020, 8, 28), date(2020, 9, 2), date(2020, 8, 28), date(2020, 9, 2), date(2020, 8, 28),
            date(2020, 8, 28), date(2020, 9, 2)]
    table = pa.Table.from_pydict({"symbol": symbols, "date": days, "open": [8.0] * 7, "high": [8.0] * 7,
                                  "low": [8.0] * 7, "close": [8.0] * 7, "volume": [100.0] * 7,
                                  "vwap": [8.0] * 7, "transactions": [1] * 7}, schema=BAR_SCHEMA)
    adjusted = _adjust(_Splits(), table, date(2020, 12, 31))  # type: ignore[arg-type]
    # searchsorted on the server's order found AAPL and BRK.B rows among AAp's and BRKA's, or none at all
    assert adjusted.column("close").to_pylist() == [8.0, 8.0, 2.0, 8.0, 8.0, 4.0, 8.0]
    assert adjusted.column("volume").to_pylist() == [100.0, 100.0, 400.0, 100.0, 100.0, 200.0, 100.0]
    assert adjusted.column("symbol").to_pylist() == symbols                 # the rows keep their order
