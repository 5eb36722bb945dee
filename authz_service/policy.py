"""The policy engine: every `policies/*.polar` file loaded into a fresh Oso, swapped in atomically.

A policy set answers two rules, written by security engineers:

    deny(actor, action, resource, reason)   explicit denials with a reason code; a deny always wins
    allow(actor, action, resource)          what is permitted; nothing else is (default deny)

Oso cannot load code twice into one instance, and `clear_rules()` + reload leaves no rules if the new
code fails, so a reload builds a new `Oso`, loads every file in one `load_files` call, checks that both
rules exist, and only then replaces the reference the decision function reads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oso import Oso, Variable

from authz_service.errors import PolicyLoadError

__all__ = ["DEFAULT_DENY_REASON", "PolicyEngine", "PolicySet", "policy_files"]

DEFAULT_DENY_REASON = "no_rule_allows"
_REQUIRED_RULES = ("allow", "deny")
_LOCATION = re.compile(r"at line (\d+), column (\d+)(?: of file (\S+?))?(?=[:\s]|$)")
logger = logging.getLogger("portcullis.authz.policy")


def policy_files(policy_dir: Path) -> list[Path]:
    """The policy files of a directory, in a stable order."""
    return sorted(path for path in policy_dir.glob("*.polar") if path.is_file())


@dataclass(frozen=True)
class PolicySet:
    """One loaded, immutable revision of the policies."""

    oso: Oso
    revision: str
    files: tuple[Path, ...]

    def evaluate(self, actor: dict[str, Any], action: str, resource: dict[str, Any]) -> tuple[bool, str]:
        """Decide one request: the first matching deny wins, then any allow, else default deny."""
        for result in self.oso.query_rule("deny", actor, action, resource, Variable("reason")):
            return False, str(result["bindings"]["reason"])
        if self.oso.query_rule_once("allow", actor, action, resource):
            return True, "allowed"
        return False, DEFAULT_DENY_REASON

    def facts(self, predicate: str, arity: int) -> list[tuple[Any, ...]]:
        """Every binding of a fact predicate, for `policy check` (empty when the predicate is absent)."""
        names = [f"arg{i}" for i in range(arity)]  # not "_x": Polar treats those as anonymous
        try:
            results = list(self.oso.query_rule(predicate, *(Variable(name) for name in names)))
        except Exception as exc:  # Oso raises a runtime error for an undefined rule
            if "undefined rule" in str(exc):
                return []
            raise
        return [tuple(result["bindings"].get(name) for name in names) for result in results]


def load_policy_set(files: list[Path], *, timeout_ms: int) -> PolicySet:
    """Load policy files into a new Oso instance.

    Raises:
        PolicyLoadError: no files, a file that cannot be read, a syntax or semantic error (with file,
            line and column when Oso reports them), or a missing `allow`/`deny` rule.
    """
    if not files:
        raise PolicyLoadError("no *.polar files found")
    digest = hashlib.sha256()
    for path in files:
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise PolicyLoadError(f"{path}: {exc.strerror}", file=str(path)) from None
        digest.update(path.name.encode() + b"\0" + content + b"\0")
    # Read by Oso's core at query time; a runaway rule becomes an error, which the decision turns into a deny.
    os.environ["POLAR_TIMEOUT_MS"] = str(timeout_ms)
    oso = Oso()
    try:
        oso.load_files([str(path) for path in files])
    except Exception as exc:  # every Oso load failure, parser or validation
        raise _load_error(exc, files) from None
    for rule in _REQUIRED_RULES:
        try:
            if rule == "allow":
                oso.query_rule_once("allow", {}, "", {})
            else:
                next(iter(oso.query_rule("deny", {}, "", {}, Variable("reason"))), None)
        except Exception as exc:
            if "undefined rule" in str(exc):
                raise PolicyLoadError(f"the policy set defines no `{rule}` rule") from None
            # Other runtime errors on the empty probe input are fine: real inputs have every field.
    return PolicySet(oso=oso, revision=digest.hexdigest()[:16], files=tuple(files))


def _load_error(exc: Exception, files: list[Path]) -> PolicyLoadError:
    first_line = str(exc).split("\n", 1)[0].strip()
    match = _LOCATION.search(str(exc))
    if match is None:
        return PolicyLoadError(f"policy load failed: {first_line}")
    line, column, file = int(match.group(1)), int(match.group(2)), match.group(3)
    if file is None and len(files) == 1:
        file = str(files[0])
    message = _LOCATION.sub("", first_line).rstrip(" :") if file else first_line
    where = f"{file}:{line}:{column}" if file else f"line {line}, column {column}"
    return PolicyLoadError(f"{where}: {message}", file=file, line=line, column=column)


class PolicyEngine:
    """Holds the current policy set; reloads replace it only when the new set loads completely."""

    def __init__(
        self,
        policy_dir: Path,
        *,
        timeout_ms: int,
        on_reload: Callable[[bool], None] | None = None,
    ):
        self.policy_dir = policy_dir
        self.timeout_ms = timeout_ms
        self.last_error: PolicyLoadError | None = None
        self._current: PolicySet | None = None
        self._on_reload = on_reload
        self._lock = threading.Lock()

    @property
    def current(self) -> PolicySet | None:
        """The policy set in force, or None before the first successful load."""
        return self._current

    @property
    def ready(self) -> bool:
        return self._current is not None

    def reload(self) -> PolicySet:
        """Load the directory again and swap it in; on failure the previous set stays in force.

        Raises:
            PolicyLoadError: the new policy set was rejected (also kept in `last_error`).
        """
        with self._lock:
            try:
                loaded = load_policy_set(policy_files(self.policy_dir), timeout_ms=self.timeout_ms)
            except PolicyLoadError as exc:
                self.last_error = exc
                kept = self._current.revision if self._current else "none"
                logger.error("policy reload rejected, revision %s stays in force: %s", kept, exc)
                if self._on_reload:
                    self._on_reload(False)
                raise
            changed = self._current is None or self._current.revision != loaded.revision
            self._current = loaded
            self.last_error = None
            if changed:
                logger.info("policy revision %s loaded from %d files", loaded.revision, len(loaded.files))
            if self._on_reload:
                self._on_reload(True)
            return loaded
