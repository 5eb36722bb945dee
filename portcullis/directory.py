"""The embedded identity directory: users with groups and business groups, and client applications."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["Directory", "DirectoryError", "DirectoryUser", "load_directory"]


class DirectoryError(Exception):
    """The directory file is missing or invalid, or names no such user or client."""


class DirectoryUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    email: str
    groups: list[str] = Field(default_factory=list)
    business_groups: list[str] = Field(default_factory=list)


class Directory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: dict[str, DirectoryUser]
    clients: dict[str, dict[str, str]] = Field(default_factory=dict)

    def user(self, name: str) -> DirectoryUser:
        try:
            return self.users[name]
        except KeyError:
            raise DirectoryError(
                f"no user {name!r} in the directory (known: {', '.join(sorted(self.users))})"
            ) from None

    def client(self, name: str) -> None:
        if name not in self.clients:
            raise DirectoryError(f"no client {name!r} in the directory (known: {', '.join(sorted(self.clients))})")


def load_directory(path: Path) -> Directory:
    """Read and validate the directory file.

    Raises:
        DirectoryError: unreadable or invalid.
    """
    try:
        return Directory.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise DirectoryError(f"invalid directory {path}: {exc}") from None
