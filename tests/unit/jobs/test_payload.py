"""The A2 documents' renderer: the same values as a plain json.dumps, keys in jsonb's own order."""

from __future__ import annotations

import json
import math

import numpy as np

from kapman.jobs.payload import JsonTemplate
from kapman.metrics.indicators import TECHNICAL_KEYS
from kapman.metrics.price import PRICE_KEYS


def _nested(keys: list[str], row: list[float]) -> dict:
    doc: dict = {}
    for key, value in zip(keys, row, strict=True):
        *path, leaf = key.split(".", 2)
        node = doc
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = None if not math.isfinite(value) else value
    return doc


def _key_orders(doc: dict) -> list[list[str]]:
    orders = [list(doc)]
    for value in doc.values():
        if isinstance(value, dict):
            orders += _key_orders(value)
    return orders


def test_documents_hold_each_value_at_its_path() -> None:
    keys = list(TECHNICAL_KEYS)
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(3, len(keys))) * 10.0 ** rng.integers(-8, 9, size=(3, len(keys)))
    rows[0, 0], rows[1, 5], rows[2, -1] = np.nan, np.inf, -np.inf
    docs = JsonTemplate(keys).render_many(rows)
    assert [json.loads(d) for d in docs] == [_nested(keys, list(r)) for r in rows]
    assert json.loads(docs[0])["momentum"]["awesome_oscillator"]["awesome_oscillator"] is None


def test_keys_come_in_jsonb_order_shorter_first_then_bytewise() -> None:
    keys = list(TECHNICAL_KEYS)
    doc = json.loads(JsonTemplate(keys).render_many(np.ones((1, len(keys))))[0])
    assert list(doc) == ["trend", "others", "volume", "momentum", "volatility"]
    for order in _key_orders(doc):
        assert order == sorted(order, key=lambda k: (len(k.encode()), k.encode()))


def test_flat_documents_also_in_jsonb_order() -> None:
    keys = list(PRICE_KEYS)
    values = np.arange(1.0, len(keys) + 1)[None, :]
    doc = json.loads(JsonTemplate(keys, nested=False).render_many(values)[0])
    assert doc == {k: float(i + 1) for i, k in enumerate(keys)}
    assert list(doc) == sorted(keys, key=lambda k: (len(k), k))
