"""The lifecycle of a server version, and how it reads in the official registry vocabulary.

    draft -> pending_review -> approved <-> deprecated -> retired
                            \\-> rejected
Approval happens when every review the settings require has been signed off; a rejected review rejects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TRANSITIONS", "Transition", "is_newer", "official_action"]


@dataclass(frozen=True)
class Transition:
    action: str  # the policy action is "registry.<action>"
    sources: frozenset[str]
    target: str


TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        Transition("submit", frozenset({"draft"}), "pending_review"),
        Transition("approve", frozenset({"pending_review"}), "approved"),
        Transition("reject", frozenset({"pending_review"}), "rejected"),
        Transition("deprecate", frozenset({"approved"}), "deprecated"),
        Transition("restore", frozenset({"deprecated"}), "approved"),
        Transition("retire", frozenset({"draft", "pending_review", "approved", "deprecated"}), "retired"),
    )
}


def official_action(current: str, status: str) -> str | None:
    """The lifecycle action an official `PATCH .../status` asks for; None when nothing would change.

    Raises:
        ValueError: the official status cannot be reached from the current lifecycle state.
    """
    if status == "active":
        if current == "approved":
            return None
        if current == "deprecated":
            return "restore"
        if current == "pending_review":
            return "approve"
        if current == "draft":
            raise ValueError("a draft must be submitted for review before it can become active")
        raise ValueError(f"a {current} version cannot become active again; publish a new version")
    if status == "deprecated":
        if current == "deprecated":
            return None
        if current == "approved":
            return "deprecate"
        raise ValueError(f"only an approved version can be deprecated (this one is {current})")
    if status == "deleted":
        if current in ("retired", "rejected"):
            return None
        return "retire"
    raise ValueError(f"unknown status {status!r}: expected active, deprecated or deleted")


_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def _key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]] | None:
    match = _SEMVER.match(version)
    if not match:
        return None
    major, minor, patch, pre = match.groups()
    if pre is None:
        return int(major), int(minor), int(patch), 1, ()
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return int(major), int(minor), int(patch), 0, parts  # a pre-release sorts before its release


def is_newer(candidate: str, current: str) -> bool:
    """Whether a newly published version replaces the current latest (semver when both are; else publish order)."""
    new, old = _key(candidate), _key(current)
    if new is None or old is None:
        return True
    return new > old
