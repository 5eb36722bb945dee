"""Strict JSON for bodies an attacker writes (the edge's MCP body, AuthZEN requests, the registry's publish body).

`json.loads` raises more than `JSONDecodeError` on hostile input: `RecursionError` for deep nesting (a 60 KB
body of `[` is enough), `ValueError` for an integer literal over `sys.get_int_max_str_digits()`,
`UnicodeDecodeError` for bytes that are no Unicode. It also accepts what RFC 8259 does not: `NaN`,
`Infinity` and numbers too large for a float (`1e999` becomes `inf`), which a service would later echo or store
as invalid JSON. `parse_json` turns all of that into one error that each caller maps to its 400.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["InvalidJson", "parse_json"]


class InvalidJson(ValueError):
    """The body is not RFC 8259 JSON, or nests deeper than the parser goes."""


def _no_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJson("a JSON number out of range")
    return value


# Built once: `json.loads` with hooks builds a new decoder per call, which costs more than parsing a small body.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def parse_json(body: bytes | str, *, max_depth: int | None = None) -> Any:
    """`body` (UTF-8 when bytes) parsed as JSON; every way it can be refused is an `InvalidJson`, never another error.

    `max_depth` bounds how deep arrays and objects nest (the top-level value is depth 1), for callers that hand the
    value to recursive code (the policy engine's serializer stops at 128).

    Raises:
        InvalidJson: not UTF-8, not JSON, `NaN`/`Infinity`, a number out of range, nesting deeper than `max_depth`
            or than the interpreter's recursion limit.
    """
    try:
        # Strict UTF-8 (RFC 8259 §8.1): no UTF-16/32 guessing and no byte-order mark, as the MCP SDK's parser.
        text = body.decode() if isinstance(body, bytes) else body
        value = _DECODER.decode(text)
    except InvalidJson:
        raise
    except (ValueError, RecursionError):
        # ValueError includes JSONDecodeError, UnicodeDecodeError and the int digit limit. RecursionError is
        # raised by the C scanner's own depth guard, so catching it costs nothing on ordinary bodies.
        raise InvalidJson("not valid JSON") from None
    if max_depth is not None and not _nests_within(value, max_depth):
        raise InvalidJson(f"JSON nests deeper than {max_depth} levels")
    return value


def _nests_within(value: Any, limit: int) -> bool:
    # A loop over containers only, never recursion: the point is to refuse what recursion cannot take.
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return False
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True
