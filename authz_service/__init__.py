"""authz_service: the policy decision point of both authorization layers.

Read it as its pipeline: input (`ext_authz` for Envoy, `authzen` for servers) -> `decision` (one
function over `policy` and the catalog, which `catalog` reads from the registry or a file) -> response, with
every decision written to the `decision_log`. The catalog model is the contract `portcullis_contracts.catalog`.
"""

from authz_service.catalog import CatalogSource, FileCatalogSource
from authz_service.decision import Actor, Decider, Decision, DecisionRequest, ResourceRef
from authz_service.errors import AuthzError, ConfigurationError, PolicyLoadError
from authz_service.policy import PolicyEngine, PolicySet
from authz_service.runtime import Runtime
from authz_service.settings import Settings

__all__ = [
    "Actor",
    "AuthzError",
    "CatalogSource",
    "ConfigurationError",
    "Decider",
    "Decision",
    "DecisionRequest",
    "FileCatalogSource",
    "PolicyEngine",
    "PolicyLoadError",
    "PolicySet",
    "ResourceRef",
    "Runtime",
    "Settings",
]
