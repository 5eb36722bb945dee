"""Errors of the identity package.

IdentityError                 a request or a document the authorization server cannot accept
└── FederationError           the upstream OIDC provider failed or answered something unacceptable
"""

from __future__ import annotations

__all__ = ["FederationError", "IdentityError"]


class IdentityError(Exception):
    """A request or a document the authorization server cannot accept."""


class FederationError(IdentityError):
    """The upstream OIDC provider failed or answered something unacceptable."""
