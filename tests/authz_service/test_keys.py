"""The signing-key ring: files on disk, pre-publication, activation, retirement, other processes, corruption."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authz_service.keys import (
    MANIFEST_FILE,
    RETIREMENT_SKEW_SECONDS,
    KeyRing,
    KeyRingError,
    SigningKey,
)

ROOT = Path(__file__).resolve().parents[2]
TTL = 600
ACTIVATION = 330
ISSUER = "http://127.0.0.1:8181"
AUDIENCE = "http://127.0.0.1:8080/servers/demo/mcp"


class Clock:
    """A wall clock the test moves."""

    def __init__(self, start: float = 1_700_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _ring(key_dir: Path, clock: Clock) -> KeyRing:
    return KeyRing.load_or_create(key_dir, activation_seconds=ACTIVATION, now=clock)


def _token(key: SigningKey, clock: Clock) -> str:
    return key.mint(issuer=ISSUER, subject="alice", audience=AUDIENCE, client_id="claude-desktop", now=clock())


def _verify_against_jwks(jwks: dict[str, Any], token: str, clock: Clock) -> dict[str, Any]:
    """What a relying party (Envoy) does: pick the key by kid in the published JWKS, check the signature."""
    kid = jwt.get_unverified_header(token)["kid"]
    published = {key["kid"]: key for key in jwks["keys"]}
    if kid not in published:
        raise LookupError(f"kid {kid} is not published")
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(published[kid]),
        algorithms=["RS256"],
        audience=AUDIENCE,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["exp"] > clock(), "the token expired: verifying it says nothing"
    return claims


def _kids(ring: KeyRing) -> list[str]:
    return [key["kid"] for key in ring.jwks()["keys"]]


def _manifest(key_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((key_dir / MANIFEST_FILE).read_text())
    return document


def test_first_key_signs_at_once_and_every_file_is_owner_only(tmp_path: Path) -> None:
    key_dir, clock = tmp_path / "state" / "keys", Clock()
    ring = _ring(key_dir, clock)
    key = ring.current()
    assert _kids(ring) == [key.kid]
    assert key_dir.stat().st_mode & 0o777 == 0o700
    assert (key_dir / f"{key.kid}.pem").stat().st_mode & 0o777 == 0o600
    assert (key_dir / MANIFEST_FILE).stat().st_mode & 0o777 == 0o600
    assert _manifest(key_dir)["keys"] == [
        {"kid": key.kid, "created_at": clock(), "active_from": clock(), "retire_at": None}
    ]


def test_reopening_a_ring_loads_the_same_key(tmp_path: Path) -> None:
    clock = Clock()
    first = _ring(tmp_path, clock).current()
    assert _ring(tmp_path, clock).current().kid == first.kid
    assert KeyRing(tmp_path, now=clock).current().kid == first.kid


def test_opening_a_directory_without_a_ring_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyRingError, match="keyring.json is missing"):
        KeyRing(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_key_files_without_a_manifest_are_refused_not_replaced_by_a_new_key(tmp_path: Path) -> None:
    stray = SigningKey.generate()
    (tmp_path / f"{stray.kid}.pem").write_bytes(stray.pem())
    with pytest.raises(KeyRingError, match="no keyring.json"):
        _ring(tmp_path, Clock())
    assert [path.name for path in tmp_path.glob("*.pem")] == [f"{stray.kid}.pem"]


def test_rotated_key_is_published_at_once_but_signs_only_from_active_from(tmp_path: Path) -> None:
    clock = Clock()
    ring = _ring(tmp_path, clock)
    old = ring.current()
    new = ring.rotate(activation_seconds=ACTIVATION, token_ttl_seconds=TTL)
    assert _kids(ring) == [old.kid, new.kid]
    assert ring.current().kid == old.kid
    assert [ring.state(entry) for entry in ring.entries()] == ["active", "pending"]
    clock.advance(ACTIVATION - 1)
    assert ring.current().kid == old.kid
    clock.advance(1)
    assert ring.current().kid == new.kid
    assert [ring.state(entry) for entry in ring.entries()] == ["retiring", "active"]


def test_after_activation_new_tokens_carry_the_new_kid_and_old_ones_verify_until_retire_at(tmp_path: Path) -> None:
    clock = Clock()
    ring = _ring(tmp_path, clock)
    old = ring.current()
    new = ring.rotate(activation_seconds=ACTIVATION, token_ttl_seconds=TTL)
    clock.advance(ACTIVATION - 1)
    last_old_token = _token(ring.current(), clock)  # the old key's last token: valid for TTL seconds
    clock.advance(1)
    new_token = _token(ring.current(), clock)
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid
    assert jwt.get_unverified_header(last_old_token)["kid"] == old.kid

    clock.advance(TTL - 2)  # the old token's last second of life
    assert _verify_against_jwks(ring.jwks(), last_old_token, clock)["sub"] == "alice"
    assert ring.public_key(old.kid) is not None
    entry = ring.entries()[0]
    assert entry.retire_at == ring.entries()[1].active_from + TTL + RETIREMENT_SKEW_SECONDS

    clock.now = entry.retire_at
    assert _kids(ring) == [new.kid]
    assert ring.public_key(old.kid) is None
    assert ring.state(entry) == "retired"
    assert _verify_against_jwks(ring.jwks(), new_token, clock)["sub"] == "alice"


def test_retired_keys_leave_the_manifest_and_the_disk_at_the_next_rotation(tmp_path: Path) -> None:
    clock = Clock()
    ring = _ring(tmp_path, clock)
    old = ring.current()
    second = ring.rotate(activation_seconds=0, token_ttl_seconds=TTL)
    clock.advance(TTL + RETIREMENT_SKEW_SECONDS)
    assert (tmp_path / f"{old.kid}.pem").exists()  # retired, not yet deleted
    third = ring.rotate(activation_seconds=ACTIVATION, token_ttl_seconds=TTL)
    assert [entry["kid"] for entry in _manifest(tmp_path)["keys"]] == [second.kid, third.kid]
    assert sorted(path.stem for path in tmp_path.glob("*.pem")) == sorted([second.kid, third.kid])


def test_a_pending_key_overtaken_by_another_rotation_retires_too(tmp_path: Path) -> None:
    clock = Clock()
    ring = _ring(tmp_path, clock)
    old = ring.current()
    pending = ring.rotate(activation_seconds=ACTIVATION, token_ttl_seconds=TTL)
    newest = ring.rotate(activation_seconds=0, token_ttl_seconds=TTL)
    assert ring.current().kid == newest.kid
    retire = {entry.kid: entry.retire_at for entry in ring.entries()}
    assert retire[pending.kid] == clock() + TTL + RETIREMENT_SKEW_SECONDS
    assert retire[old.kid] == clock() + ACTIVATION + TTL + RETIREMENT_SKEW_SECONDS  # set by the first rotation
    assert retire[newest.kid] is None
    clock.advance(ACTIVATION)
    assert ring.current().kid == newest.kid  # the later rotation wins


def test_another_instance_sees_a_rotation_within_a_second(tmp_path: Path) -> None:
    clock = Clock()
    worker = _ring(tmp_path, clock)
    other_process = KeyRing(tmp_path, now=clock)
    new = other_process.rotate(activation_seconds=ACTIVATION, token_ttl_seconds=TTL)
    assert new.kid not in _kids(worker)  # checked at most once a second
    clock.advance(1)
    assert new.kid in _kids(worker)
    assert worker.public_key(new.kid) is not None
    clock.advance(ACTIVATION)
    assert worker.current().kid == new.kid


_ENTRY = {"kid": "KID", "created_at": 1, "active_from": 1, "retire_at": None}


def _doc(*entries: dict[str, Any], version: int = 1) -> str:
    return json.dumps({"version": version, "keys": list(entries)})


@pytest.mark.parametrize(
    "manifest",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param("[]", id="not-an-object"),
        pytest.param(_doc(), id="no-keys"),
        pytest.param(_doc(_ENTRY, version=2), id="unknown-version"),
        pytest.param(_doc({**_ENTRY, "kid": "../../etc/passwd"}), id="kid-not-a-thumbprint"),
        pytest.param(_doc({**_ENTRY, "created_at": "yesterday"}), id="time-not-a-number"),
        pytest.param(_doc(_ENTRY, _ENTRY), id="kid-twice"),
        pytest.param(_doc({"kid": "KID"}), id="times-missing"),
    ],
)  # fmt: skip
def test_corrupt_manifest_is_an_error_never_a_new_key(tmp_path: Path, manifest: str) -> None:
    key = _ring(tmp_path, Clock()).current()
    (tmp_path / MANIFEST_FILE).write_text(manifest.replace("KID", key.kid))
    with pytest.raises(KeyRingError, match="keyring.json is corrupt"):
        _ring(tmp_path, Clock())
    assert [path.stem for path in tmp_path.glob("*.pem")] == [key.kid]


@pytest.mark.parametrize("content", ["ec", "garbage"])
def test_key_file_that_is_not_an_rsa_private_key_is_an_error(tmp_path: Path, content: str) -> None:
    key = _ring(tmp_path, Clock()).current()
    if content == "ec":
        other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        expected = "is not an RSA private key"
    else:
        other, expected = b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", "is not an unencrypted PEM"
    (tmp_path / f"{key.kid}.pem").write_bytes(other)
    with pytest.raises(KeyRingError, match=expected):
        KeyRing(tmp_path)


def test_key_file_holding_another_key_than_its_kid_is_an_error(tmp_path: Path) -> None:
    key = _ring(tmp_path, Clock()).current()
    (tmp_path / f"{key.kid}.pem").write_bytes(SigningKey.generate().pem())
    with pytest.raises(KeyRingError, match=f"not {key.kid}"):
        KeyRing(tmp_path)


def test_missing_key_file_is_an_error(tmp_path: Path) -> None:
    key = _ring(tmp_path, Clock()).current()
    (tmp_path / f"{key.kid}.pem").unlink()
    with pytest.raises(KeyRingError, match="is missing"):
        KeyRing(tmp_path)


def test_running_ring_keeps_its_keys_when_the_manifest_turns_corrupt(tmp_path: Path) -> None:
    clock = Clock()
    ring = _ring(tmp_path, clock)
    key = ring.current()
    (tmp_path / MANIFEST_FILE).write_text("{broken")
    clock.advance(1)
    assert ring.current().kid == key.kid
    assert _kids(ring) == [key.kid]
    assert ring.last_error is not None and "corrupt" in str(ring.last_error)


def test_public_key_is_none_for_an_unknown_kid(tmp_path: Path) -> None:
    ring = _ring(tmp_path, Clock())
    assert ring.public_key("no-such-kid") is None
    assert ring.public_key(ring.current().kid) is not None


def test_jwks_never_includes_private_parts(tmp_path: Path) -> None:
    ring = _ring(tmp_path, Clock())
    ring.rotate(activation_seconds=ACTIVATION, token_ttl_seconds=TTL)
    for key in ring.jwks()["keys"]:
        assert set(key) == {"kty", "e", "n", "kid", "use", "alg"}


def test_sign_sends_the_payload_as_given_with_the_kid_header(tmp_path: Path) -> None:
    key = _ring(tmp_path, Clock()).current()
    token = key.sign({"sub": "alice", "custom": [1, 2]})
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    assert jwt.decode(token, key.public_key(), algorithms=["RS256"]) == {"sub": "alice", "custom": [1, 2]}


def _assert_consistent(key_dir: Path, rotations: int) -> None:
    entries = KeyRing(key_dir).entries()
    assert len(entries) == rotations + 1  # no rotation lost another's key
    assert [entry.retire_at is None for entry in entries] == [False] * rotations + [True]
    assert sorted(path.stem for path in key_dir.glob("*.pem")) == sorted(entry.kid for entry in entries)
    assert not list(key_dir.glob(".*.tmp"))


def test_concurrent_rotations_from_threads_leave_a_consistent_manifest(tmp_path: Path) -> None:
    _ring(tmp_path, Clock())
    start, errors = threading.Barrier(8), []

    def rotate() -> None:
        ring = KeyRing(tmp_path)  # its own instance and lock descriptor, as another process would have
        start.wait()
        try:
            ring.rotate(activation_seconds=ACTIVATION, token_ttl_seconds=TTL)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=rotate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    _assert_consistent(tmp_path, 8)


def test_concurrent_rotations_from_processes_leave_a_consistent_manifest(tmp_path: Path) -> None:
    KeyRing.load_or_create(tmp_path, activation_seconds=ACTIVATION)
    code = (
        "import sys; from pathlib import Path; from authz_service.keys import KeyRing; "
        "ring = KeyRing(Path(sys.argv[1])); "
        "[ring.rotate(activation_seconds=330, token_ttl_seconds=600) for _ in range(3)]"
    )
    processes = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT) for _ in range(4)]
    assert [process.wait(timeout=60) for process in processes] == [0] * 4
    _assert_consistent(tmp_path, 12)
