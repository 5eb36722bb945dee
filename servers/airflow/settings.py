"""Where the Airflow server finds Airflow: `PORTCULLIS_AIRFLOW_*` (the kit's own settings are `KIT_AIRFLOW_*`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_API_PORT", "DEFAULT_API_URL", "DEFAULT_USERNAME", "AirflowSettings"]

DEFAULT_API_PORT = 8380
DEFAULT_API_URL = f"http://127.0.0.1:{DEFAULT_API_PORT}"
DEFAULT_USERNAME = "portcullis"


class AirflowSettings(BaseSettings):
    """The Airflow 3 API behind the server and the service account it logs in with.

    Attributes:
        api_url: Airflow's API server (`/api/v2`, `/auth/token` below it).
        username, password: the service account (`POST /auth/token`); the password is never logged.
        business_group: the business group the DAGs are labelled with for the policy ("" for none).
        timeout_seconds: per HTTP request to Airflow.
        token_refresh_seconds: fetch a new JWT this long before the current one expires.
    """

    model_config = SettingsConfigDict(env_prefix="PORTCULLIS_AIRFLOW_", extra="ignore")

    api_url: str = DEFAULT_API_URL
    username: str = DEFAULT_USERNAME
    password: SecretStr = SecretStr("")
    business_group: str = ""
    timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    token_refresh_seconds: float = Field(default=60.0, ge=0, le=3600)
