"""Compact JSON for the hot path: orjson, with the standard library where orjson says no.

orjson encodes a credential's response, its JWT parts and its log lines at a fraction of
``json.dumps``'s cost (measured in docs/performance.md). It refuses what ``json.dumps``
accepts in two corners: strings with lone surrogates (which a client can send as ``\\ud800``
in a JSON body) and integers past 64 bits; those go through ``json.dumps``, so nothing that
encoded before fails now. Tested against ``json.dumps`` (tests/unit/test_fastjson.py).
"""

import json
from collections.abc import Callable
from typing import Any

import orjson


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` as compact JSON (UTF-8), ``default`` converting what JSON has no type for."""
    try:
        return orjson.dumps(value, default=default)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, default=default, separators=(",", ":")).encode()
