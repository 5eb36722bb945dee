"""Wire contracts shared by Portcullis services that must not import one another.

A contract here is what travels over HTTP between two services (a document's shape, its header rules, a metadata
key) plus, when both sides need the same small piece of behaviour to honour it, that piece. Nothing here imports a
service package: the services import this package, never the reverse.
"""

from __future__ import annotations

__all__: list[str] = []
