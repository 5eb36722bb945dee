"""One strict parser for the URLs that decide trust, shared by the identity server (redirect URIs, metadata
documents, resource indicators) and the registry (a server's declared downstream resources).

A URL is accepted only in its canonical form, parsed here by hand rather than by `urllib.parse`, whose lenient
splitting is what let `http://127.0.0.1:80@attacker.example/cb` look like a loopback URI. Refused outright:
anything outside printable ASCII (whitespace, control characters, non-ASCII hosts), backslashes, fragments,
userinfo (`user:password@`), an upper-case scheme or host, percent-encoding in the host, a trailing dot, IPv4 in
any spelling other than dotted decimal (`2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1`), IPv6 outside brackets or
not in its compressed form, an empty or malformed port, a missing authority (`http:/host`, `http:///host`), and
dot segments or empty segments in the path (also percent-encoded). Callers then compare components.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["LOOPBACK_IP_HOSTS", "WEB_SCHEMES", "ParsedURL", "URLRejected", "absolute_url_problem", "parse_url"]

LOOPBACK_IP_HOSTS = frozenset({"127.0.0.1", "[::1]"})
_MAX_LENGTH = 2048
WEB_SCHEMES = ("http", "https")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-z]*|[0-9]+)")  # what a browser would read as (part of) an IPv4 address
_PORT = re.compile(r"[1-9][0-9]{0,4}")
# RFC 3986 pchar plus "/" and "?" (query), with %XX escapes checked separately.
_PATH_OR_QUERY = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DOT_SEGMENTS = frozenset({".", ".."})


class URLRejected(ValueError):
    """A URL that is not in the one canonical form this server accepts; the message says why."""


@dataclass(frozen=True)
class ParsedURL:
    """The components of a canonical URL. `host` is lower case, an IPv6 literal keeps its brackets; `port` is
    None when absent; `path` is "/" when empty. A private-use scheme URI may have no host (`com.example.app:/cb`).
    """

    scheme: str
    host: str
    port: int | None
    path: str
    query: str

    @property
    def loopback_ip(self) -> bool:
        """A loopback IP literal (RFC 8252 §7.3): the only host whose port a redirect may change."""
        return self.host in LOOPBACK_IP_HOSTS


def parse_url(value: object) -> ParsedURL:
    """The components of `value`, which must be an absolute URL in canonical form.

    Raises:
        URLRejected: not a string, too long, or anything non-canonical (see the module's docstring).
    """
    if not isinstance(value, str) or not value:
        raise URLRejected("not a URI")
    if len(value) > _MAX_LENGTH:
        raise URLRejected(f"longer than {_MAX_LENGTH} characters")
    if any(not 0x21 <= ord(char) <= 0x7E for char in value):
        raise URLRejected("whitespace, control or non-ASCII characters")
    if "\\" in value:
        raise URLRejected("a backslash")
    if "#" in value:
        raise URLRejected("a fragment")
    scheme, colon, rest = value.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        raise URLRejected("no scheme, or a scheme not in lower case")
    if rest.startswith("//"):
        end = min((i for i in (rest.find("/", 2), rest.find("?", 2)) if i >= 0), default=len(rest))
        host, port = _authority(rest[2:end])
        rest = rest[end:]
    elif scheme in WEB_SCHEMES:
        raise URLRejected("no authority: write scheme://host/path")
    elif not rest.startswith("/"):
        raise URLRejected("a private-use scheme URI needs an absolute path")
    else:
        host, port = "", None
    if not _PATH_OR_QUERY.fullmatch(rest) or _PERCENT.search(rest):
        raise URLRejected("characters a URI may not have, or a broken %-escape")
    path, _, query = rest.partition("?")
    _check_path(path)
    return ParsedURL(scheme=scheme, host=host, port=port, path=path or "/", query=query)


def _authority(authority: str) -> tuple[str, int | None]:
    if not authority:
        raise URLRejected("no host")
    if "@" in authority:
        raise URLRejected("a user or password part")
    if "%" in authority:
        raise URLRejected("a %-escape in the host")
    if authority.startswith("["):
        host, bracket, after = authority.partition("]")
        host += bracket
        if not bracket:
            raise URLRejected("an unclosed IPv6 literal")
        _check_ipv6(host)
    else:
        host, _, after = authority.partition(":")
        after = ":" + after if ":" in authority else ""
        _check_host(host)
    if not after:
        return host, None
    if not after.startswith(":") or not _PORT.fullmatch(after[1:]) or int(after[1:]) > 65_535:
        raise URLRejected("a malformed port")
    return host, int(after[1:])


def _check_ipv6(host: str) -> None:
    try:
        address = ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        raise URLRejected("a malformed IPv6 literal") from None
    if f"[{address.compressed}]" != host or address.ipv4_mapped is not None:
        raise URLRejected("an IPv6 literal not in its compressed form (or IPv4-mapped)")


def _check_host(host: str) -> None:
    if not host or len(host) > 253:
        raise URLRejected("no host, or a host name that is too long")
    labels = host.split(".")
    if not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise URLRejected("a host that is not a lower-case DNS name or IPv4 address (or ends with a dot)")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # A browser reads this as an IPv4 address in some spelling: only dotted decimal is canonical.
        try:
            canonical = str(ipaddress.IPv4Address(host))
        except ValueError:
            raise URLRejected("an IPv4 address not written in dotted decimal") from None
        if canonical != host:
            raise URLRejected("an IPv4 address not written in dotted decimal")


def _check_path(path: str) -> None:
    if path and not path.startswith("/"):
        raise URLRejected("a path that does not start with /")
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        decoded = segment.replace("%2e", ".").replace("%2E", ".")
        if decoded in _DOT_SEGMENTS:
            raise URLRejected("a dot segment in the path")
        if not segment and index < len(segments) - 1:
            raise URLRejected("an empty segment (//) in the path")
        if "%2f" in segment.lower() or "%5c" in segment.lower():
            raise URLRejected("an encoded slash or backslash in the path")


def absolute_url_problem(value: object, *, allow_http: bool = True) -> str | None:
    """Why `value` is not an absolute http(s) URL fit to name a resource (RFC 8707 §2), or None when it is."""
    try:
        parsed = parse_url(value)
    except URLRejected as exc:
        return f"not a canonical absolute URI ({exc})"
    if parsed.scheme != "https" and not (allow_http and parsed.scheme == "http"):
        return "not an https URI" if not allow_http else "not an http(s) URI"
    return None
