"""The authorization server's state, shared by every worker process: registered clients, authorization codes,
refresh tokens, revoked access tokens and used client-assertion ids.

Codes and refresh tokens are stored as SHA-256 hashes: whoever reads the database cannot use them. Single use is
one conditional UPDATE (`used = false` -> `true`), so two workers racing on the same code cannot both win.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, delete, event, make_url, update
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from authz_service.identity.subject import Subject

__all__ = ["CodeGrant", "IdentityStore", "RefreshGrant", "token_hash"]


def token_hash(value: str) -> str:
    """The stored form of a code or refresh token."""
    return hashlib.sha256(value.encode()).hexdigest()


# How long a revoked family's tombstone is kept: longer than any refresh token of the family can live.
_FAMILY_TOMBSTONE_SECONDS = 400 * 86_400


def _family_tombstone(family_id: str) -> str:
    return hashlib.sha256(f"revoked-family\0{family_id}".encode()).hexdigest()


class RegisteredClient(SQLModel, table=True):
    """A client registered dynamically (RFC 7591) or read from its metadata document (cached)."""

    __tablename__ = "oauth_clients"
    client_id: str = Field(primary_key=True, max_length=2048)
    kind: str = Field(max_length=32)  # "dynamic" | "metadata_document"
    metadata_json: str
    secret_hash: str = ""
    created_at: float
    expires_at: float | None = None  # metadata documents are re-read after this


class AuthorizationCode(SQLModel, table=True):
    __tablename__ = "authorization_codes"
    code_hash: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=2048)
    redirect_uri: str
    scope: str
    resource: str
    subject_json: str
    code_challenge: str
    nonce: str = ""
    expires_at: float
    used: bool = False
    family_id: str = Field(max_length=64)


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_tokens"
    token_hash: str = Field(primary_key=True, max_length=64)
    family_id: str = Field(index=True, max_length=64)
    client_id: str = Field(max_length=2048)
    subject_json: str
    scope: str
    resource: str
    expires_at: float
    used: bool = False
    revoked: bool = False


class RevokedAccessToken(SQLModel, table=True):
    __tablename__ = "revoked_access_tokens"
    jti: str = Field(primary_key=True, max_length=64)
    expires_at: float = Field(index=True)


class UsedAssertion(SQLModel, table=True):
    """Client assertions (private_key_jwt) already presented: a replay is refused."""

    __tablename__ = "used_assertions"
    key: str = Field(primary_key=True, max_length=128)
    expires_at: float


class LoginFailure(SQLModel, table=True):
    """Failed sign-ins per key (a user name, a client address) in the current window."""

    __tablename__ = "login_failures"
    key: str = Field(primary_key=True, max_length=320)
    window_start: float
    count: int = 0


_SingleUse = TypeVar("_SingleUse", AuthorizationCode, RefreshToken)


@dataclass(frozen=True)
class CodeGrant:
    """What an authorization code stands for."""

    client_id: str
    redirect_uri: str
    scope: str
    resource: str
    subject: Subject
    code_challenge: str
    nonce: str
    family_id: str


@dataclass(frozen=True)
class RefreshGrant:
    """What a refresh token stands for."""

    family_id: str
    client_id: str
    scope: str
    resource: str
    subject: Subject
    expires_at: float


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA busy_timeout=5000")  # several worker processes write: wait, don't fail
    cursor.close()


def _owner_only_sqlite_file(database_url: str) -> None:
    """Create a SQLite file 0600 before SQLite does (it would use the umask); its journals inherit the mode."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    path = Path(url.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


class IdentityStore:
    """The shared state, over SQLite (default, one file per deployment) or PostgreSQL."""

    def __init__(self, database_url: str, *, now: Callable[[], float] = time.time):
        self._now = now
        _owner_only_sqlite_file(database_url)
        connect_args = {"check_same_thread": False} if database_url.startswith("sqlite") else {}
        self.engine: Engine = create_engine(database_url, connect_args=connect_args)
        if database_url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        SQLModel.metadata.create_all(
            self.engine,
            tables=[
                RegisteredClient.__table__,  # type: ignore[attr-defined]
                AuthorizationCode.__table__,  # type: ignore[attr-defined]
                RefreshToken.__table__,  # type: ignore[attr-defined]
                RevokedAccessToken.__table__,  # type: ignore[attr-defined]
                UsedAssertion.__table__,  # type: ignore[attr-defined]
                LoginFailure.__table__,  # type: ignore[attr-defined]
            ],
        )

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    # Clients

    def save_client(
        self, client_id: str, kind: str, metadata: dict[str, Any], *, secret_hash: str = "", ttl: float | None = None
    ) -> None:
        now = self._now()
        row = RegisteredClient(
            client_id=client_id,
            kind=kind,
            metadata_json=json.dumps(metadata),
            secret_hash=secret_hash,
            created_at=now,
            expires_at=now + ttl if ttl is not None else None,
        )
        with self._session() as session:
            session.merge(row)
            session.commit()

    def client(self, client_id: str) -> tuple[str, dict[str, Any], str, bool] | None:
        """(kind, metadata, secret hash, fresh) of a stored client, or None."""
        with self._session() as session:
            row = session.get(RegisteredClient, client_id)
        if row is None:
            return None
        fresh = row.expires_at is None or row.expires_at > self._now()
        return row.kind, json.loads(row.metadata_json), row.secret_hash, fresh

    # Authorization codes

    def save_code(self, code: str, grant: CodeGrant, *, ttl: float) -> None:
        row = AuthorizationCode(
            code_hash=token_hash(code),
            client_id=grant.client_id,
            redirect_uri=grant.redirect_uri,
            scope=grant.scope,
            resource=grant.resource,
            subject_json=grant.subject.to_json(),
            code_challenge=grant.code_challenge,
            nonce=grant.nonce,
            expires_at=self._now() + ttl,
            family_id=grant.family_id,
        )
        with self._session() as session:
            session.add(row)
            session.commit()

    def code(self, code: str, client_id: str) -> CodeGrant | None:
        """A live, unused code's grant for this client, without consuming it: a token request is validated in full
        before `consume_code`, so a request refused for its own mistake leaves the code usable.
        """
        with self._session() as session:
            row = session.get(AuthorizationCode, token_hash(code))
        if row is None or row.used or row.client_id != client_id or row.expires_at <= self._now():
            return None
        return _code_grant(row)

    def consume_code(self, code: str, client_id: str) -> CodeGrant | None:
        """The code's grant, marking it used; None when unknown, expired, used, or another client's.

        A second presentation of a used code revokes every refresh token issued from it (RFC 6749 §4.1.2).
        """
        with self._session() as session:
            key = col(AuthorizationCode.code_hash)
            row, claimed = self._use_once(session, AuthorizationCode, key, token_hash(code), client_id)
            if row is not None and not claimed and row.used:
                self._revoke_family(session, row.family_id)
            session.commit()
        if not claimed or row is None:
            return None
        return _code_grant(row)

    # Refresh tokens

    def save_refresh_token(self, token: str, grant: RefreshGrant) -> None:
        row = RefreshToken(
            token_hash=token_hash(token),
            family_id=grant.family_id,
            client_id=grant.client_id,
            subject_json=grant.subject.to_json(),
            scope=grant.scope,
            resource=grant.resource,
            expires_at=grant.expires_at,
        )
        with self._session() as session:
            session.add(row)
            session.commit()

    def refresh_token(self, token: str) -> RefreshGrant | None:
        """A live refresh token's grant (not used, not revoked, not expired, its family not revoked), without
        consuming it.
        """
        with self._session() as session:
            row = session.get(RefreshToken, token_hash(token))
            if row is None or row.used or row.revoked or row.expires_at <= self._now():
                return None
            # A token saved by the winner of a race with a replay, after the replay revoked its family's rows.
            if session.get(RefreshToken, _family_tombstone(row.family_id)) is not None:
                return None
        return _refresh_grant(row)

    def rotate_refresh_token(self, token: str, client_id: str) -> RefreshGrant | None:
        """Consume a refresh token for a new one; None when it is not live or is another client's.

        Presenting an already rotated token means it leaked: the whole family is revoked (OAuth 2.1 §4.3.1).
        """
        with self._session() as session:
            key, live = col(RefreshToken.token_hash), col(RefreshToken.revoked).is_(False)
            row, claimed = self._use_once(session, RefreshToken, key, token_hash(token), client_id, live)
            if row is not None and not claimed and row.used and row.client_id == client_id:
                self._revoke_family(session, row.family_id)
            session.commit()
        if not claimed or row is None:
            return None
        return _refresh_grant(row)

    def revoke_refresh_token(self, token: str, client_id: str) -> bool:
        """Revoke the token's whole family (RFC 7009 §2.1); False when it is not this client's token."""
        with self._session() as session:
            row = session.get(RefreshToken, token_hash(token))
            if row is None or row.client_id != client_id:
                return False
            self._revoke_family(session, row.family_id)
            session.commit()
        return True

    def _use_once(
        self, session: Session, table: type[_SingleUse], key: Any, digest: str, client_id: str, *conditions: Any
    ) -> tuple[_SingleUse | None, bool]:
        """Mark a live, unused row of this client used in one conditional UPDATE (of two concurrent callers, one
        wins); the row as it is now, and whether this call claimed it.
        """
        claimed = session.execute(  # type: ignore[attr-defined]
            update(table)
            .where(
                key == digest,
                col(table.used).is_(False),
                col(table.expires_at) > self._now(),
                col(table.client_id) == client_id,
                *conditions,
            )
            .values(used=True)
        ).rowcount
        return session.get(table, digest), bool(claimed)

    def _revoke_family(self, session: Session, family_id: str) -> None:
        session.execute(
            update(RefreshToken).where(RefreshToken.family_id == family_id).values(revoked=True)  # type: ignore[arg-type]
        )
        # The family stays revoked for tokens saved after this (the winner of a race with the replay that revoked
        # it): a tombstone row no presented token can claim (used, revoked, no client), checked before each use.
        session.merge(
            RefreshToken(
                token_hash=_family_tombstone(family_id),
                family_id=family_id,
                client_id="",
                subject_json="",
                scope="",
                resource="",
                expires_at=self._now() + _FAMILY_TOMBSTONE_SECONDS,
                used=True,
                revoked=True,
            )
        )

    # Access tokens (self-contained JWTs: revocation is a deny list until they expire)

    def revoke_access_token(self, jti: str, expires_at: float) -> None:
        with self._session() as session:
            session.merge(RevokedAccessToken(jti=jti, expires_at=expires_at))
            session.commit()

    def access_token_revoked(self, jti: str) -> bool:
        with self._session() as session:
            return session.get(RevokedAccessToken, jti) is not None

    def revoked_access_tokens(self) -> frozenset[str]:
        """The jti of every revoked access token that has not expired yet."""
        return frozenset(self.revocations(not_expired_before=self._now()))

    def revocations(self, *, not_expired_before: float) -> dict[str, float]:
        """jti -> expiry of every revoked access token expiring after `not_expired_before` (the revocation feed;
        small: tokens live minutes)."""
        with self._session() as session:
            rows = session.exec(
                select(RevokedAccessToken.jti, RevokedAccessToken.expires_at).where(
                    RevokedAccessToken.expires_at > not_expired_before
                )
            )
            return dict(rows.all())

    # Client assertions

    def use_assertion(self, key: str, expires_at: float) -> bool:
        """Record a client assertion's id; False when it was seen before (a replay)."""
        with self._session() as session:
            if session.get(UsedAssertion, key) is not None:
                return False
            session.add(UsedAssertion(key=key, expires_at=expires_at))
            try:
                session.commit()
            except Exception:  # a concurrent insert of the same id: also a replay
                return False
        return True

    # Failed sign-ins (password guessing is throttled before the password is even hashed)

    def failures(self, keys: list[str], window: float) -> int:
        """The largest count of failed sign-ins in the current window among `keys`."""
        now = self._now()
        with self._session() as session:
            rows = session.exec(select(LoginFailure).where(LoginFailure.key.in_(keys)))  # type: ignore[attr-defined]
            return max((row.count for row in rows if row.window_start > now - window), default=0)

    def record_failure(self, keys: list[str], window: float) -> None:
        now = self._now()
        with self._session() as session:
            for key in keys:
                row = session.get(LoginFailure, key)
                if row is None or row.window_start <= now - window:
                    session.merge(LoginFailure(key=key, window_start=now, count=1))
                else:
                    row.count += 1
                    session.add(row)
            try:
                session.commit()
            except Exception:  # a concurrent first failure for the same key: that one counted
                session.rollback()

    def clear_failures(self, key: str) -> None:
        with self._session() as session:
            session.execute(delete(LoginFailure).where(LoginFailure.key == key))  # type: ignore[arg-type]
            session.commit()

    def purge_expired(self, *, keep_seconds: float = 3600) -> int:
        """Delete what can no longer be used: expired codes, refresh tokens, revocations and assertion ids.

        A used code or rotated refresh token is kept until it expires (plus `keep_seconds` for codes), so that
        presenting it again is still recognized as a replay. Returns the number of rows deleted.
        """
        now = self._now()
        deleted = 0
        with self._session() as session:
            for table, cutoff in (
                (AuthorizationCode, now - keep_seconds),
                (RefreshToken, now),
                # Listed in the revocation feed until well past expiry (verifiers' clock leeway).
                (RevokedAccessToken, now - keep_seconds),
                (UsedAssertion, now),
            ):
                result = session.execute(delete(table).where(table.expires_at < cutoff))  # type: ignore[arg-type]
                deleted += int(result.rowcount or 0)  # type: ignore[attr-defined]
            session.execute(
                delete(RegisteredClient).where(
                    RegisteredClient.kind == "metadata_document",  # type: ignore[arg-type]
                    RegisteredClient.expires_at < now,  # type: ignore[arg-type,operator]
                )
            )
            session.commit()
        return deleted

    def close(self) -> None:
        self.engine.dispose()


def _code_grant(row: AuthorizationCode) -> CodeGrant:
    return CodeGrant(
        client_id=row.client_id,
        redirect_uri=row.redirect_uri,
        scope=row.scope,
        resource=row.resource,
        subject=Subject.from_json(row.subject_json),
        code_challenge=row.code_challenge,
        nonce=row.nonce,
        family_id=row.family_id,
    )


def _refresh_grant(row: RefreshToken) -> RefreshGrant:
    return RefreshGrant(
        family_id=row.family_id,
        client_id=row.client_id,
        scope=row.scope,
        resource=row.resource,
        subject=Subject.from_json(row.subject_json),
        expires_at=row.expires_at,
    )
