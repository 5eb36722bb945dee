"""Errors of the identity package, under the service's base error (`authz_service.errors.AuthzError`).

IdentityError                 a request or a document the authorization server cannot accept
└── FederationError           400  the upstream OIDC provider refused this login, or its answer does not verify
    └── FederationUnavailable 502  the upstream OIDC provider cannot be used now (unreachable, not JSON, a
                                   document without the endpoints or keys it must name, an error status)
"""

from __future__ import annotations

from authz_service.errors import AuthzError

__all__ = ["FederationError", "FederationUnavailable", "IdentityError"]


class IdentityError(AuthzError):
    """A request or a document the authorization server cannot accept."""


class FederationError(IdentityError):
    """The upstream OIDC provider refused this login, or what it answered does not verify."""


class FederationUnavailable(FederationError):
    """The upstream OIDC provider cannot be used now: unreachable, or answering something unusable."""
