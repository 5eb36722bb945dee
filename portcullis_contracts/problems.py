"""How a service words what pydantic found wrong: one line, each problem named by where it is.

Every service turns a `ValidationError` (a request body, a settings object, a governance extension) into the
same message shape, so a caller or an operator reads one format: `where: what` pairs joined by `; `.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["validation_problems"]


def validation_problems(
    errors: Iterable[Mapping[str, object]], *, limit: int | None = None, env_prefix: str | None = None, root: str = ""
) -> str:
    """The problems of `errors` (pydantic's `exc.errors()`), `; `-separated, at most `limit` of them.

    A problem is named by its dotted location (`resource.properties.server`), or, given `env_prefix`, by the
    environment variable that set it (`KIT_DEMO_ISSUER`). `root` names a problem of the whole object (no location).
    """
    listed = list(errors) if limit is None else list(errors)[:limit]
    return "; ".join(f"{_where(error.get('loc'), env_prefix, root)}: {error.get('msg')}" for error in listed)


def _where(loc: object, env_prefix: str | None, root: str) -> str:
    parts = [str(part) for part in loc] if isinstance(loc, list | tuple) else []
    if env_prefix is None:
        return ".".join(parts) or root
    return env_prefix + ("_".join(parts).upper() or root)
