"""The OAuth 2.1 authorization server of the platform (on Authlib), inside authz_service.

Read it from the outside in: `routes` (HTTP endpoints and the login/consent pages) -> `server` (Authlib's
authorization server, endpoints) and `grants` (the token endpoint's grants) -> `tokens` (what is issued, and for
which resource) -> `store` (codes, refresh tokens, clients, revocations, shared by every worker process).
Identity comes from the directory file (embedded; its format is `portcullis_contracts.directory`, which the
registry's development login reads too) or `federation` (an upstream OIDC provider); `clients` resolves client
applications (directory, dynamic registration, metadata documents).
"""

from authz_service.identity.errors import FederationError, IdentityError
from authz_service.identity.provider import IdentityProvider
from authz_service.identity.routes import build_identity_router
from authz_service.identity.server import SCOPES, AuthorizationServer
from authz_service.identity.subject import Subject

__all__ = [
    "SCOPES",
    "AuthorizationServer",
    "FederationError",
    "IdentityError",
    "IdentityProvider",
    "Subject",
    "build_identity_router",
]
