"""The edge refuses every check with 503 while its revocation feed is stale: a token revoked meanwhile must not
pass, and an outage is not a traceback per request.
"""

from __future__ import annotations

import logging

import pytest

from authz_service.ext_authz import check
from portcullis_contracts.revocations import RevocationFollower
from tests.authz_service.helpers import decider
from tests.authz_service.test_ext_authz import ALICE_CLAIMS, _error, _request, _tool_call


def test_a_stale_revocation_feed_makes_a_check_a_503_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    decide, _, _ = decider()
    never_loaded = RevocationFollower(url="http://127.0.0.1:9/revocations")
    request = _request({**ALICE_CLAIMS, "jti": "live-1"}, body=_tool_call("whoami"))
    with caplog.at_level(logging.INFO):
        response = check(request, decide, revoked=never_loaded.revoked)
    assert response.denied_response.status.code == 503
    assert _error(response)["data"]["reason"] == "revocations_unavailable"
    assert not [record for record in caplog.records if record.exc_info]


@pytest.mark.parametrize(
    "jti", [None, "", ["live-1"], {"a": 1}, 7, "x" * 300], ids=["missing", "empty", "list", "object", "number", "huge"]
)
def test_with_a_feed_a_token_without_a_usable_jti_is_401_never_a_503(jti: object) -> None:
    # A token the feed could never name would never be refused; a list jti was unhashable: a 503 with a trace.
    decide, _, _ = decider()
    claims = {**ALICE_CLAIMS, "jti": jti} if jti is not None else dict(ALICE_CLAIMS)
    response = check(_request(claims, body=_tool_call("whoami")), decide, revoked=lambda: frozenset({"other"}))
    assert response.denied_response.status.code == 401
    assert _error(response)["data"]["reason"] == "invalid_token"


def test_with_a_feed_a_revoked_jti_is_401_and_a_live_one_passes() -> None:
    decide, _, _ = decider()

    def revoked() -> frozenset[str]:
        return frozenset({"gone"})

    refused = check(_request({**ALICE_CLAIMS, "jti": "gone"}, body=_tool_call("whoami")), decide, revoked=revoked)
    assert refused.denied_response.status.code == 401
    assert _error(refused)["data"]["reason"] == "token_revoked"
    allowed = check(_request({**ALICE_CLAIMS, "jti": "live"}, body=_tool_call("whoami")), decide, revoked=revoked)
    assert allowed.HasField("ok_response")
