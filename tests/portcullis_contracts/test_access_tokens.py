import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from portcullis_contracts.access_tokens import (
    IssuerKeys,
    TokenRefused,
    check_not_revoked,
    decode_access_token,
)

ISSUER, AUDIENCE = "https://issuer.test", "https://gw.test/servers/demo/mcp"
_PRIVATE = ec.generate_private_key(ec.SECP256R1())
_PUBLIC = jwt.PyJWK(
    json.loads(jwt.algorithms.ECAlgorithm.to_jwk(_PRIVATE.public_key())) | {"kid": "k1", "alg": "ES256"}
)


class Source:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_signing_key(self, kid: str) -> jwt.PyJWK:
        self.asked.append(kid)
        if kid != "k1":
            raise jwt.PyJWKClientError(f"no key {kid}")
        return _PUBLIC


def _token(kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 60, "jti": "t1"} | claims
    return jwt.encode({k: v for k, v in body.items() if v is not None}, _PRIVATE, "ES256", headers={"kid": kid})


def _decode(token: str, require_jti: bool = True) -> dict[str, Any]:
    key = IssuerKeys("unused", source=Source()).key_for(token)
    return decode_access_token(token, key, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=0, require_jti=require_jti)


def test_a_token_for_this_audience_from_this_issuer_gives_its_claims() -> None:
    assert _decode(_token())["sub"] == "alice"


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"aud": "https://elsewhere"}, "not issued for this server"),
        ({"jti": None}, "MissingRequiredClaimError"),
        ({"jti": "x" * 300}, "jti is not a token id"),
    ],
)
def test_a_token_that_breaks_a_rule_is_refused(claims: dict[str, Any], why: str) -> None:
    with pytest.raises(TokenRefused, match=why):
        _decode(_token(**claims))


def test_an_unknown_key_id_is_asked_of_the_issuer_at_most_every_ten_seconds() -> None:
    now = [100.0]
    source = Source()
    keys = IssuerKeys("unused", source=source, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(TokenRefused, match="unknown key"):
            keys.key_for(_token(kid="k9"))
    assert source.asked == ["k9"]
    now[0] += 10
    with pytest.raises(TokenRefused):
        keys.key_for(_token(kid="k9"))
    assert source.asked == ["k9", "k9"]


def test_a_token_the_feed_lists_is_refused() -> None:
    claims = _decode(_token())
    check_not_revoked(claims, frozenset)
    with pytest.raises(TokenRefused, match="revoked"):
        check_not_revoked(claims, lambda: frozenset({"t1"}))
