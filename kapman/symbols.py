"""Ticker symbols as the source writes them: case-sensitive, never folded.

In the CQS convention a lower-case letter marks a class: ``AAp`` is a preferred of one company,
``AAP`` another company; ``w`` marks warrants, ``r`` rights; ``BRK.B`` a share class; ``I:SPX``
an index (the vendor's ``I:`` namespace).  Every part
of KapMan keeps a symbol's case; where a name matches a ticker only when case is ignored, it is
reported with the likely intended symbol rather than silently mapped.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

#: ASCII letters (either case: lower-case class suffixes), digits and '.', starting with a letter;
#: an index is the vendor's ``I:`` namespace before such a name (``I:SPX``).  Checked before
#: anything else, so no Unicode case mapping (``ı`` -> ``I``, ``ß`` -> ``SS``) can turn a foreign
#: character into a valid symbol.
SYMBOL = re.compile(r"(?:I:)?[A-Za-z][A-Za-z0-9.]{0,19}", re.ASCII)
MAX_LENGTH = 20
INDEX_PREFIX = "I:"


def is_symbol(text: str) -> bool:
    return text.isascii() and SYMBOL.fullmatch(text) is not None and len(text) <= MAX_LENGTH


def is_index(symbol: str) -> bool:
    """An index (``I:SPX``): no stock bars in the flat files; options cash-settled, European."""
    return symbol.startswith(INDEX_PREFIX)


def capped(items: list[str], limit: int = 10) -> str:
    """The first ``limit`` items joined by spaces, then how many more there are."""
    shown = " ".join(items[:limit])
    return f"{shown} ... and {len(items) - limit} more" if len(items) > limit else shown


def case_suggestions(conn: psycopg.Connection, symbols: list[str]) -> dict[str, str]:
    """symbol -> the ticker(s) it matches only when case is ignored ("AAPL", or "AAP or AAp").

    Only a hint for messages: symbols are case-sensitive and never mapped this way.
    """
    if not symbols:
        return {}
    rows = conn.execute("SELECT u.symbol, string_agg(t.symbol, ' or ' ORDER BY t.symbol) "
                        "FROM unnest(%s::text[]) AS u(symbol) "
                        "JOIN public.tickers t ON upper(t.symbol) = upper(u.symbol) AND t.symbol <> u.symbol "
                        "GROUP BY u.symbol", (symbols,)).fetchall()
    return {symbol: near for symbol, near in rows}
