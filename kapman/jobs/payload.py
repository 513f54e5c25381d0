"""Serialise rows of float values into nested ``{category: {indicator: {output: v}}}`` JSON fast.

A key has three levels (``trend.sma.sma_200``) or two (``pattern_recognition.cdl2crows``, a
pattern has one output).

The document's shape is fixed per key list, so it is rendered once as a ``%s`` template; the
numbers of a whole (rows x keys) matrix are formatted in one orjson call (shortest round-trip
repr; NaN and inf become null) and each row only fills the template.  About 10x faster than
json.dumps per row.

Keys are written in the order jsonb keeps them (shorter first, then bytewise): the server sorts
each object's keys as it parses a document, and input already in that order is sorted in one
pass.  The stored document is the same either way; parsing it measured 10-20 % cheaper, and
parsing is most of a date's write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import orjson


def _jsonb_order(key: str) -> tuple[int, bytes]:
    """The position jsonb gives an object's key: by length in bytes, then bytewise."""
    raw = key.encode()
    return len(raw), raw


class JsonTemplate:
    def __init__(self, keys: Sequence[str], *, nested: bool = True) -> None:
        self.keys = tuple(keys)
        if nested:
            tree: dict = {}
            for k in self.keys:
                *path, leaf = k.split(".", 2)   # "cat.ind.out" or two levels ("pattern_recognition.cdl2crows")
                node = tree
                for part in path:
                    node = node.setdefault(part, {})
                    if not isinstance(node, dict):
                        raise ValueError(f"key {k!r}: {part!r} is both a value and a group")
                if leaf in node:
                    raise ValueError(f"key {k!r} is given twice or is also a group")
                node[leaf] = None
            self._order: list[str] = []
            body = self._render(tree, ())
        else:
            self._order = sorted(self.keys, key=_jsonb_order)
            body = ",".join(f"{json.dumps(k)}:%s" for k in self._order)
        self._template = "{" + body + "}"
        self._bytes = self._template.encode()
        position = {k: n for n, k in enumerate(self.keys)}
        self._perm = np.array([position[k] for k in self._order], dtype=np.intp)

    def _render(self, tree: dict, path: tuple[str, ...]) -> str:
        """The template's body for ``tree``; leaves (None) become ``%s`` in key order."""
        parts = []
        for name, sub in sorted(tree.items(), key=lambda item: _jsonb_order(item[0])):
            if sub is None:
                self._order.append(".".join((*path, name)))
                parts.append(f"{json.dumps(name)}:%s")
            else:
                parts.append(f"{json.dumps(name)}:{{" + self._render(sub, (*path, name)) + "}")
        return ",".join(parts)

    def render_many(self, rows: np.ndarray) -> list[bytes]:
        """One JSON document per row of a (n, len(keys)) float matrix."""
        if not len(rows):
            return []
        ordered = np.ascontiguousarray(rows[:, self._perm], dtype=np.float64)
        text = orjson.dumps(ordered, option=orjson.OPT_SERIALIZE_NUMPY)
        template = self._bytes
        return [template % tuple(row.split(b",")) for row in text[2:-2].split(b"],[")]
