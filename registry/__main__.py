"""`python -m registry`: serve the registry with uvicorn on the configured host and port."""

from __future__ import annotations

import logging

import uvicorn

from registry.app import create_app
from registry.settings import RegistrySettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = RegistrySettings()
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
