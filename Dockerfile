# syntax=docker/dockerfile:1
# One image for the Python services of Portcullis (authz_service, the registry, the MCP servers on the server
# kit); the gateway runs the official Envoy image with envoy/envoy.yaml (see docker-compose.yml).
#
#   docker build -t portcullis:local .

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml ./
COPY authz_service/ authz_service/
COPY gateway/ gateway/
COPY portcullis/ portcullis/
COPY registry/ registry/
COPY server_kit/ server_kit/
COPY servers/ servers/
RUN pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin portcullis
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Defaults baked in; docker-compose.yml mounts the checkout's policies/ and config/ over them (hot reload).
COPY policies/ policies/
COPY config/ config/
# The state directory (signing keys, decision log). A named volume mounted here starts with this owner,
# so the non-root user can write to it.
RUN mkdir .portcullis && chown portcullis:portcullis .portcullis && chmod 0700 .portcullis
USER portcullis
EXPOSE 8181 9191 9192 8300
CMD ["python", "-m", "authz_service"]
