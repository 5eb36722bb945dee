"""The grants of the token endpoint, on Authlib's grant classes: authorization code (PKCE S256 only, RFC 8707
resource), refresh token (rotated, reuse revokes the family), client credentials, and token exchange (RFC 8693).
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749 import grants as authlib_grants
from authlib.oauth2.rfc7636 import CodeChallenge

from authz_service.identity.store import CodeGrant
from authz_service.identity.subject import Subject
from authz_service.identity.tokens import InvalidTargetError
from portcullis_contracts.directory import TOKEN_EXCHANGE_GRANT

__all__ = [
    "AuthorizationCodeGrant",
    "ClientCredentialsGrant",
    "RefreshTokenGrant",
    "S256CodeChallenge",
    "TokenExchangeGrant",
]

_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
_ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
_JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"


def _resources(grant: Any) -> list[str]:
    return list(grant.request.payload.datalist.get("resource", []))


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE for every client (OAuth 2.1), with S256 only: `plain` and a missing challenge are refused."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only code_challenge_method=S256 is supported.")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: _StoredCode) -> str:
        return authorization_code.grant.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: _StoredCode) -> str:
        return "S256"


class _StoredCode:
    """An authorization code as Authlib's grant expects it."""

    def __init__(self, grant: CodeGrant):
        self.grant = grant

    def get_redirect_uri(self) -> str:
        return self.grant.redirect_uri

    def get_scope(self) -> str:
        return self.grant.scope


class AuthorizationCodeGrant(authlib_grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = _AUTH_METHODS

    @staticmethod
    def validate_authorization_redirect_uri(request: Any, client: Any) -> str:
        """The redirect URI, required (OAuth 2.1) and matched strictly (`redirects.redirect_matches`).

        Raises:
            InvalidRequestError: missing or not registered; it never repeats the URI (Authlib's message did, and a
                quote or non-ASCII character in it made the error itself fail: a 500).
        """
        redirect_uri = request.payload.redirect_uri
        if not redirect_uri:
            raise InvalidRequestError("Missing 'redirect_uri' in request.")
        if not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError("The redirect URI is not registered for this client.")
        return str(redirect_uri)

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        try:
            self.request.resource = self.server.resources.check(_resources(self))
        except InvalidTargetError as error:
            error.redirect_uri = redirect_uri
            raise
        return redirect_uri

    def generate_authorization_code(self) -> str:
        return secrets.token_urlsafe(32)

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        grant = CodeGrant(
            client_id=request.client.client_id,
            redirect_uri=data.get("redirect_uri", ""),
            scope=request.scope,
            resource=request.resource,
            subject=request.user,
            code_challenge=data.get("code_challenge", ""),
            nonce=data.get("nonce", ""),
            family_id=uuid.uuid4().hex,
        )
        self.server.store.save_code(code, grant, ttl=self.server.code_ttl)

    def query_authorization_code(self, code: str, client: Any) -> _StoredCode | None:
        # Read, not consumed: the request is validated in full first (redirect URI, PKCE, resource), so a request
        # refused for its own mistake does not burn the code. A used code is consumed again here, which is how
        # its reuse is detected (and the family it issued revoked).
        grant = self.server.store.code(code, client.client_id)
        if grant is None:
            self.server.store.consume_code(code, client.client_id)
            return None
        return _StoredCode(grant)

    def delete_authorization_code(self, authorization_code: _StoredCode) -> None:
        pass  # already consumed by query_authorization_code

    def authenticate_user(self, authorization_code: _StoredCode) -> Subject | None:
        subject: Subject | None = self.server.current_subject(authorization_code.grant.subject)
        return subject

    def validate_token_request(self) -> None:
        super().validate_token_request()  # a missing or different redirect_uri is invalid_grant, then PKCE
        requested = _resources(self)
        code: CodeGrant = self.request.authorization_code.grant
        if requested and self.server.resources.check(requested) != code.resource:
            raise InvalidTargetError("The resource differs from the authorization request's.")
        if self.authenticate_user(self.request.authorization_code) is None:
            raise InvalidGrantError("The user of this code no longer exists.")
        # Consumed last, in one conditional UPDATE: of two concurrent presentations only one can win.
        if self.server.store.consume_code(self.request.form.get("code", ""), self.request.client.client_id) is None:
            raise InvalidGrantError("Invalid 'code' in request.")

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        code: CodeGrant = self.request.authorization_code.grant
        subject = self.authenticate_user(self.request.authorization_code)
        if subject is None:
            raise InvalidGrantError("The user of this code no longer exists.")
        client = self.request.client
        body = self.server.tokens.respond(
            subject=subject,
            client_id=client.client_id,
            scope=code.scope,
            resource=code.resource,
            refresh=client.check_grant_type("refresh_token"),
            family_id=code.family_id,
            nonce=code.nonce,
        )
        return 200, body, self.TOKEN_RESPONSE_HEADER


class RefreshTokenGrant(authlib_grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = _AUTH_METHODS

    def validate_token_request(self) -> None:
        client = self._validate_request_client()
        self.request.client = client
        token = self.request.form.get("refresh_token")
        if not token:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        store = self.server.store
        # Validate first, consume last: a refresh refused for its own mistake (scope, resource) leaves the token
        # live, or the client's corrected retry would look like reuse and revoke the whole family.
        grant = store.refresh_token(token)
        if grant is None or grant.client_id != client.client_id:
            store.rotate_refresh_token(token, client.client_id)  # a used token of this client: reuse, revoke
            raise InvalidGrantError("The refresh token is invalid, expired, revoked or already used.")
        requested = self.request.payload.scope
        if requested and not set(requested.split()) <= set(grant.scope.split()):
            raise InvalidScopeError("A refresh cannot widen the scope.")
        resources = _resources(self)
        if resources and self.server.resources.check(resources) != grant.resource:
            raise InvalidTargetError("A refresh token is bound to the resource it was issued for.")
        if self.server.current_subject(grant.subject) is None:
            raise InvalidGrantError("The user of this refresh token no longer exists.")
        rotated = store.rotate_refresh_token(token, client.client_id)  # one conditional UPDATE: one winner
        if rotated is None:
            raise InvalidGrantError("The refresh token is invalid, expired, revoked or already used.")
        self.request.refresh_token = rotated

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        grant = self.request.refresh_token
        subject = self.server.current_subject(grant.subject)
        if subject is None:
            raise InvalidGrantError("The user of this refresh token no longer exists.")
        body = self.server.tokens.respond(
            subject=subject,
            client_id=grant.client_id,
            scope=self.request.payload.scope or grant.scope,
            resource=grant.resource,
            refresh=True,
            family_id=grant.family_id,
        )
        return 200, body, self.TOKEN_RESPONSE_HEADER


class ClientCredentialsGrant(authlib_grants.ClientCredentialsGrant):  # type: ignore[misc]
    """A client acting on its own: the token's subject is the client, with the groups the directory gives it."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        scope = self.request.client.get_allowed_scope(self.request.payload.scope)
        if scope is None:
            raise InvalidScopeError()
        self.request.scope = scope
        self.request.resource = self.server.resources.check(_resources(self))

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client = self.request.client
        subject = Subject(
            sub=client.client_id,
            name=client.name,
            groups=tuple(client.groups),
            business_groups=tuple(client.business_groups),
            source="client",
        )
        body = self.server.tokens.respond(
            subject=subject,
            client_id=client.client_id,
            scope=self.request.scope,
            resource=self.request.resource,
            refresh=False,
        )
        return 200, body, self.TOKEN_RESPONSE_HEADER


class TokenExchangeGrant(authlib_grants.BaseGrant, authlib_grants.TokenEndpointMixin):  # type: ignore[misc]
    """RFC 8693: a server trades the token it received for a token to a downstream resource, on behalf of the
    same user, with itself recorded as the actor (`act`), instead of forwarding the user's token.
    """

    GRANT_TYPE = TOKEN_EXCHANGE_GRANT
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("The client may not use token exchange.")
        self.request.client = client
        data = self.request.payload.data
        subject_token = data.get("subject_token")
        if not subject_token:
            raise InvalidRequestError("Missing 'subject_token'.")
        if data.get("subject_token_type") not in (_ACCESS_TOKEN_TYPE, _JWT_TOKEN_TYPE):
            raise InvalidRequestError("subject_token_type must be an access token.")
        if data.get("actor_token"):
            raise InvalidRequestError("actor_token is not supported: the authenticated client is the actor.")
        requested_type = data.get("requested_token_type")
        if requested_type and requested_type != _ACCESS_TOKEN_TYPE:
            raise InvalidRequestError("Only access tokens can be requested.")
        try:
            claims = self.server.tokens.verify(subject_token)
        except InvalidRequestError as error:
            raise InvalidGrantError(f"The subject token is not acceptable ({error.description}).") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        resources = self.server.resources
        acting = [entry for entry in client.acts_for if resources.for_server(entry) in audiences]
        if not acting:
            raise InvalidGrantError("The subject token was not issued to a resource this client acts for.")
        targets = [*_resources(self), *self.request.payload.datalist.get("audience", [])]
        self.request.resource = resources.check(targets, required=True)
        # A confused deputy otherwise: a server could trade its callers' tokens for any audience (the registry,
        # say) and act there as them. It may reach only what its reviewed server.json declares.
        if self.request.resource not in resources.declared_downstream(acting):
            raise InvalidTargetError(
                "The resource is not among the downstream_resources this server declares (server.json governance)."
            )
        granted = set(str(claims.get("scope", "")).split())
        requested = self.request.payload.scope
        scope = requested or " ".join(sorted(granted))
        if not set(scope.split()) <= granted:
            raise InvalidScopeError("An exchanged token cannot widen the subject token's scope.")
        self.request.scope = scope
        self.request.subject_claims = claims

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        claims = self.request.subject_claims
        client = self.request.client
        subject = Subject(
            sub=str(claims["sub"]),
            email=str(claims.get("email", "")),
            groups=tuple(claims.get("groups", ())),
            business_groups=tuple(claims.get("business_groups", ())),
            source="exchange",
        )
        act: dict[str, Any] = {"sub": client.client_id}
        if "act" in claims:
            act["act"] = claims["act"]  # a chain of delegations keeps its history (RFC 8693 §4.1)
        body = self.server.tokens.respond(
            subject=subject,
            client_id=client.client_id,
            scope=self.request.scope,
            resource=self.request.resource,
            refresh=False,
            act=act,
        )
        body["issued_token_type"] = _ACCESS_TOKEN_TYPE
        return 200, body, self.TOKEN_RESPONSE_HEADER
