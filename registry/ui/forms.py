"""Reading the UI's form posts: a bounded urlencoded body, and redirect targets kept on this site."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

__all__ = ["FORM_LIMIT_BYTES", "local_path", "read_form"]

FORM_LIMIT_BYTES = 16 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (bounded); anything unreadable is an empty form, so its CSRF check fails."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT_BYTES:
            return {}
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)


def local_path(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, nothing a browser would reinterpret)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if any(ord(c) < 0x21 or c in "\\\x7f" for c in target):
        return "/"
    return target
