"""`python -m authz_service`: run the authorization service with settings from `AUTHZ_*`."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from authz_service.errors import AuthzError
from authz_service.settings import Settings
from authz_service.worker import PortInUseError, serve
from portcullis_contracts.catalog import CatalogError


def main() -> int:
    try:
        settings = Settings()
    except (ValidationError, AuthzError) as exc:
        print(f"authz_service: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        return serve(settings)
    except (PortInUseError, AuthzError, CatalogError) as exc:
        print(f"authz_service: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
