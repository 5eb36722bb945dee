"""Redirect URIs: which may be registered (RFC 7591, metadata documents, the directory) and whether a requested
one is the registered one. Both sides are parsed by the one strict parser (`portcullis_contracts.urls`) and compared by
components; only the port of a loopback IP literal may differ (RFC 8252 §7.3).
"""

from __future__ import annotations

import re

from portcullis_contracts.urls import WEB_SCHEMES, URLRejected, parse_url

__all__ = ["curated_redirect_uri_problem", "redirect_matches", "redirect_uri_problem"]

_PRIVATE_SCHEME = re.compile(r"[a-z][a-z0-9+-]*(?:\.[a-z0-9+-]+)+")  # reverse DNS (RFC 8252 §7.1)
_BROWSER_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about", "filesystem", "view-source"})


def redirect_uri_problem(uri: object) -> str | None:
    """Why `uri` cannot be a registered redirect URI, or None when it can: https, http on a loopback address,
    or a reverse-DNS private-use scheme (native apps, RFC 8252). Never a fragment, userinfo or anything
    non-canonical; never javascript:, data: or file:.
    """
    try:
        parsed = parse_url(uri)
    except URLRejected as exc:
        return f"not a canonical URI ({exc})"
    if parsed.scheme == "https":
        return None
    if parsed.scheme == "http" and (parsed.loopback_ip or parsed.host == "localhost"):
        return None
    if parsed.scheme not in WEB_SCHEMES and _PRIVATE_SCHEME.fullmatch(parsed.scheme):
        return None
    return "use https, http on a loopback address, or a reverse-DNS private-use scheme"


def curated_redirect_uri_problem(uri: object) -> str | None:
    """Why an administrator's redirect URI (the directory) cannot be used, or None: the registration rule, or
    any other canonical custom scheme of a native app (`cursor://anysphere.cursor-retrieval/oauth/callback`);
    never a scheme a browser runs or reads locally.
    """
    problem = redirect_uri_problem(uri)
    if problem is None:
        return None
    try:
        parsed = parse_url(uri)
    except URLRejected:
        return problem
    if parsed.scheme in WEB_SCHEMES or parsed.scheme in _BROWSER_SCHEMES:
        return problem
    return None


def redirect_matches(registered: str, requested: str) -> bool:
    """Whether `requested` is the registered redirect URI: equal scheme, host, path and query, and equal port,
    except that a loopback IP literal over http may use any port (RFC 8252 §7.3, OAuth 2.1 §8.4.2).
    Anything either side cannot parse strictly never matches.
    """
    try:
        want, got = parse_url(registered), parse_url(requested)
    except URLRejected:
        return False
    if (want.scheme, want.host, want.path, want.query) != (got.scheme, got.host, got.path, got.query):
        return False
    if want.port == got.port:
        return True
    return want.scheme == "http" and want.loopback_ip
