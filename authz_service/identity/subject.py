"""Who signed in: the identity the authorization server puts in its tokens."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Subject"]


@dataclass(frozen=True)
class Subject:
    """A person (from the directory or the upstream provider) or a client acting on its own behalf."""

    sub: str
    email: str = ""
    name: str = ""
    groups: tuple[str, ...] = ()
    business_groups: tuple[str, ...] = ()
    # "directory", the upstream issuer's URL, or "client" (client_credentials).
    source: str = "directory"
    auth_time: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def claims(self) -> dict[str, Any]:
        """The identity claims of an access token (the edge and the servers decide on these)."""
        return {
            "email": self.email,
            "name": self.name,
            "groups": list(self.groups),
            "business_groups": list(self.business_groups),
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Subject:
        data = json.loads(text)
        data["groups"] = tuple(data.get("groups", ()))
        data["business_groups"] = tuple(data.get("business_groups", ()))
        return cls(**data)
