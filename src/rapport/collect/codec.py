"""JSON for the ingest hot path: orjson where it gives the same answer as the standard library, else stdlib.

orjson parses and serialises several times faster than ``json``, but differs at the edges: it reads
integers past 64 bits as floats, refuses a byte-order mark, lone surrogate escapes and numbers that overflow
to infinity (which ``json`` accepts and validation then quarantines with a precise reason), and writes
small floats differently (``1e-05`` vs ``0.00001``). Each function here takes the fast path only where the
outcome is provably the same and otherwise hands the input to the standard library, so what Rapport
accepts, refuses, stores and measures does not depend on which path ran (docs/decisions/0003-orjson.md).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: Bytes that may mark a float formatted differently by orjson and ``json`` (exponent < -4).
_SMALL_FLOAT_MARKS = (b"e-", b"0.0000")
_text_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def compact_size(value: Any) -> int:
    """Return the byte size of ``value`` as ``json.dumps(value, ensure_ascii=False)`` compact UTF-8.

    For values ``kit.fastjson.fast_loads`` produced (no NaN/Infinity, no lone surrogates, no integers past 64 bits);
    a value orjson would format differently (small floats) is measured with the standard library.
    """
    try:
        out = orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: an integer past 64 bits
        return len(_text_encoder.encode(value).encode("utf-8"))
    if _SMALL_FLOAT_MARKS[0] in out or _SMALL_FLOAT_MARKS[1] in out:
        return len(_text_encoder.encode(value).encode("utf-8"))
    return len(out)


def dumps_text(value: Any) -> str:
    """Serialise a stored JSON column (events.properties, …) to compact text; any valid JSON will do."""
    if not value:
        return "{}" if isinstance(value, dict) else json.dumps(value)
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:  # an integer past 64 bits: the standard library writes it exactly
        return json.dumps(value, separators=(",", ":"))
