"""The HTTP face of the authorization server: discovery metadata, the authorization endpoint with its login and
consent pages, the token, registration, revocation, introspection and userinfo endpoints, and the callback of
login federation.

The pages keep the pending authorization request and the login in signed, HttpOnly, SameSite cookies, so any
worker process can serve any step. Their names start with `portcullis_idp_`: cookies are not scoped by port, and
the registry on the same host has a session cookie of its own. A request whose client or redirect URI is not
valid never redirects (an open redirect); it gets an error page.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jinja2
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from authz_service.identity.clients import Client
from authz_service.identity.errors import FederationError, FederationUnavailable
from authz_service.identity.federation import PendingLogin
from authz_service.identity.provider import IdentityProvider
from authz_service.identity.revocations import FEED_PATH
from authz_service.identity.server import OAuthResponse, form_request, json_request
from authz_service.identity.subject import Subject
from portcullis_contracts.http_input import BodyTooLarge, read_limited
from portcullis_contracts.json_input import InvalidJson, parse_json
from portcullis_contracts.revocations import etag_matches

__all__ = ["build_identity_router"]

logger = logging.getLogger("portcullis.authz.identity")
_HERE = Path(__file__).parent
_PENDING_COOKIE = "portcullis_idp_request"
_SESSION_COOKIE = "portcullis_idp_session"
_FEDERATION_COOKIE = "portcullis_idp_federation"
_PENDING_MAX_AGE = 600
_SESSION_MAX_AGE = 8 * 3600
# No form-action: the consent POST answers with a redirect to the client, which form-action would block.
_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'"
_SCOPE_TEXT = {
    "mcp": "Use the MCP server's tools as you",
    "openid": "Know who you are",
    "profile": "See your name",
    "email": "See your email address",
    "offline_access": "Stay connected when you are away (refresh tokens)",
}
_FORM = "application/x-www-form-urlencoded"


def build_identity_router(identity: IdentityProvider, *, max_body_bytes: int) -> APIRouter:
    """The OAuth routes of one process."""
    router = APIRouter()
    server = identity.server
    serializer = URLSafeTimedSerializer(identity.session_secret, salt="portcullis-identity")
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    secure_cookies = identity.issuer.startswith("https://")

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = templates.get_template(name).render(issuer=identity.issuer, **context)
        return HTMLResponse(
            body,
            status_code=status,
            headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store", "X-Frame-Options": "DENY"},
        )

    def oauth_json(result: OAuthResponse) -> Response:
        status, body, headers = result
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        response = JSONResponse(body, status_code=status, headers=dict(headers))
        response.headers["Cache-Control"] = "no-store"
        return response

    def set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure_cookies, path="/"
        )

    def read_cookie(request: Request, name: str, max_age: int) -> Any:
        raw = request.cookies.get(name)
        if not raw:
            return None
        try:
            return serializer.loads(raw, max_age=max_age)
        except BadSignature:
            return None

    def session_subject(request: Request) -> Subject | None:
        data = read_cookie(request, _SESSION_COOKIE, _SESSION_MAX_AGE)
        if not isinstance(data, str):
            return None
        subject = identity.current_subject(Subject.from_json(data))
        return subject

    def with_iss(response: Response) -> Response:
        location = response.headers.get("location")
        if location and "iss=" not in (urlsplit(location).query or ""):
            response.headers["location"] = add_params_to_uri(location, [("iss", identity.issuer)])
        return response

    def authorization_error(error: OAuth2Error, state: str | None) -> Response:
        """A redirect to the client only when its redirect URI was validated; an error page otherwise."""
        if error.redirect_uri:
            error.state = state
            status, _, headers = server.handle_error_response(None, error)
            return with_iss(RedirectResponse(dict(headers)["Location"], status_code=303 if status == 302 else status))
        return page("error.html", 400, error=error.error, description=error.get_error_description() or "")

    async def form_pairs(request: Request) -> list[tuple[str, str]] | Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != _FORM:
            return JSONResponse(
                {"error": "invalid_request", "error_description": f"the body must be {_FORM}"}, status_code=400
            )
        try:
            body = await read_limited(request, max_body_bytes)
        except BodyTooLarge as exc:
            return JSONResponse({"error": "invalid_request", "error_description": str(exc)}, status_code=413)
        try:
            return parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return JSONResponse({"error": "invalid_request", "error_description": "not UTF-8"}, status_code=400)

    def validate_pending(pairs: list[tuple[str, str]]) -> Any:
        request = form_request("GET", f"{identity.issuer}/authorize", {}, pairs)
        try:
            return server.get_consent_grant(request)
        except ValueError:
            # Authlib refuses to build an error whose description would repeat a quote, a backslash or non-ASCII
            # text the request carried (an unsupported response_type, say): an error page, never a 500.
            raise InvalidRequestError("The request has characters this server does not accept.") from None

    def consent_page(grant: Any, subject: Subject, csrf: str) -> HTMLResponse:
        client: Client = grant.request.client
        scopes = (grant.request.scope or "").split()
        resource = grant.request.resource
        return page(
            "consent.html",
            client=client,
            unverified=client.kind != "directory",
            redirect_host=urlsplit(grant.redirect_uri).netloc or grant.redirect_uri,
            resource=resource,
            scopes=[(scope, _SCOPE_TEXT.get(scope, scope)) for scope in scopes],
            subject=subject,
            csrf=csrf,
        )

    # Discovery

    @router.get("/.well-known/oauth-authorization-server")
    @router.get("/.well-known/openid-configuration")
    async def metadata() -> JSONResponse:
        return JSONResponse(server.metadata(), headers={"Cache-Control": "public, max-age=300"})

    # Authorization endpoint, login and consent

    @router.get("/authorize")
    async def authorize(request: Request) -> Response:
        pairs = list(request.query_params.multi_items())
        state = request.query_params.get("state")
        try:
            grant = await run_in_threadpool(validate_pending, pairs)
        except OAuth2Error as error:
            return authorization_error(error, state)
        csrf = secrets.token_urlsafe(24)
        subject = None if request.query_params.get("prompt") == "login" else session_subject(request)
        if subject is None and request.query_params.get("prompt") == "none":
            login_required = OAuth2Error(redirect_uri=grant.redirect_uri)
            login_required.error = "login_required"
            return authorization_error(login_required, state)
        if subject is not None:
            response: Response = consent_page(grant, subject, csrf)
        elif identity.upstream is not None:
            try:
                url, pending = await run_in_threadpool(identity.upstream.start)
            except FederationError as exc:
                return page("error.html", 502, error="temporarily_unavailable", description=str(exc))
            response = RedirectResponse(url, status_code=303)
            set_cookie(response, _FEDERATION_COOKIE, serializer.dumps(pending.__dict__), _PENDING_MAX_AGE)
        else:
            response = page("login.html", client=grant.request.client, csrf=csrf, error="", username="")
        set_cookie(response, _PENDING_COOKIE, serializer.dumps({"pairs": pairs, "csrf": csrf}), _PENDING_MAX_AGE)
        return response

    def pending_request(request: Request, form: dict[str, str]) -> tuple[list[tuple[str, str]], str] | None:
        data = read_cookie(request, _PENDING_COOKIE, _PENDING_MAX_AGE)
        if not isinstance(data, dict) or not secrets.compare_digest(str(form.get("csrf", "")), str(data["csrf"])):
            return None
        return [(str(k), str(v)) for k, v in data["pairs"]], str(data["csrf"])

    @router.post("/login")
    async def login(request: Request) -> Response:
        if identity.upstream is not None:  # federated: the directory's passwords are not a way in
            return page("error.html", 400, error="invalid_request", description="sign in at the company's provider")
        pairs = await form_pairs(request)
        if isinstance(pairs, Response):
            return pairs
        form = dict(pairs)
        pending = pending_request(request, form)
        if pending is None:
            return page("error.html", 400, error="invalid_request", description=_EXPIRED)
        try:
            grant = await run_in_threadpool(validate_pending, pending[0])
        except OAuth2Error as error:
            return authorization_error(error, dict(pending[0]).get("state"))
        username = form.get("username", "").strip()[:256]
        address = request.client.host if request.client else ""
        if await run_in_threadpool(identity.login_throttled, username, address):
            logger.warning("sign-ins paused after repeated failures")  # never the name typed
            return page(
                "login.html", 429, client=grant.request.client, csrf=pending[1], username=username,
                error="Too many failed sign-ins. Wait 15 minutes and try again.",
            )  # fmt: skip
        subject = await run_in_threadpool(identity.login, username, form.get("password", ""), address=address)
        if subject is None:
            logger.info("login failed for a directory user")  # never the name or password typed
            return page(
                "login.html", 401, client=grant.request.client, csrf=pending[1], username=username,
                error="Wrong user name or password.",
            )  # fmt: skip
        response = consent_page(grant, subject, pending[1])
        set_cookie(response, _SESSION_COOKIE, serializer.dumps(subject.to_json()), _SESSION_MAX_AGE)
        return response

    @router.get("/federation/callback")
    async def federation_callback(request: Request) -> Response:
        upstream = identity.upstream
        data = read_cookie(request, _FEDERATION_COOKIE, _PENDING_MAX_AGE)
        pending_data = read_cookie(request, _PENDING_COOKIE, _PENDING_MAX_AGE)
        if upstream is None or not isinstance(data, dict) or not isinstance(pending_data, dict):
            return page("error.html", 400, error="invalid_request", description=_EXPIRED)
        try:
            subject = await run_in_threadpool(upstream.finish, dict(request.query_params), PendingLogin(**data))
        except FederationUnavailable as exc:  # the provider's fault, not this login's: retrying later may work
            return page("error.html", 502, error="temporarily_unavailable", description=str(exc))
        except FederationError as exc:
            return page("error.html", 400, error="access_denied", description=str(exc))
        pairs = [(str(k), str(v)) for k, v in pending_data["pairs"]]
        try:
            grant = await run_in_threadpool(validate_pending, pairs)
        except OAuth2Error as error:
            return authorization_error(error, dict(pairs).get("state"))
        response = consent_page(grant, subject, str(pending_data["csrf"]))
        set_cookie(response, _SESSION_COOKIE, serializer.dumps(subject.to_json()), _SESSION_MAX_AGE)
        response.delete_cookie(_FEDERATION_COOKIE, path="/")
        return response

    @router.post("/consent")
    async def consent(request: Request) -> Response:
        pairs = await form_pairs(request)
        if isinstance(pairs, Response):
            return pairs
        form = dict(pairs)
        pending = pending_request(request, form)
        subject = session_subject(request)
        if pending is None or subject is None:
            return page("error.html", 400, error="invalid_request", description=_EXPIRED)
        oauth_request = form_request("GET", f"{identity.issuer}/authorize", {}, pending[0])
        try:
            grant = await run_in_threadpool(validate_pending, pending[0])
        except OAuth2Error as error:
            return authorization_error(error, dict(pending[0]).get("state"))
        approved = form.get("decision") == "approve"
        status, _, headers = await run_in_threadpool(
            server.create_authorization_response, oauth_request, subject if approved else None, grant
        )
        location = dict(headers).get("Location")
        if location is None:  # pragma: no cover - Authlib answers an authorization request with a redirect
            return page("error.html", 400, error="invalid_request", description="the request could not be completed")
        response = with_iss(RedirectResponse(location, status_code=303))
        response.delete_cookie(_PENDING_COOKIE, path="/")
        return response

    # Token endpoint and friends

    async def form_endpoint(request: Request, path: str, respond: Callable[[Any], OAuthResponse]) -> Response:
        """A form-encoded POST endpoint of Authlib's (token, revocation, introspection), run on a worker thread."""
        pairs = await form_pairs(request)
        if isinstance(pairs, Response):
            return pairs
        oauth_request = form_request("POST", f"{identity.issuer}{path}", request.headers, pairs)
        try:
            return oauth_json(await run_in_threadpool(respond, oauth_request))
        except ValueError:
            # Authlib refuses to build an error whose description would repeat a quote, a backslash or non-ASCII
            # text the request carried: a 400 that repeats nothing, never a 500.
            logger.warning("%s: a request refused for characters an error may not repeat", path)
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_description": "The request has characters this server does not accept.",
                },
                status_code=400,
            )

    @router.post("/token")
    async def token(request: Request) -> Response:
        return await form_endpoint(request, "/token", server.create_token_response)

    @router.post("/revoke")
    async def revoke(request: Request) -> Response:
        response = await form_endpoint(request, "/revoke", partial(server.create_endpoint_response, "revocation"))
        identity.revocations.invalidate()  # this process's next poll re-reads the store
        return response

    @router.get(FEED_PATH)
    async def revocations(request: Request) -> Response:
        # Public, like a CRL: a jti is a random id, useless without its token. Each process reads the store at
        # most every 0.25 s and serves the same bytes in between, so polls cannot turn into database load.
        document = identity.revocations.current()
        if document is None:
            try:
                document = await run_in_threadpool(identity.revocations.document)
            except Exception:  # never serve an old list as current: followers keep theirs, then fail closed
                logger.warning("revocation feed: the identity store cannot be read")
                return JSONResponse(
                    {"error": "temporarily_unavailable", "error_description": "revocations cannot be read"},
                    status_code=503,
                    headers={"Cache-Control": "no-store", "Retry-After": "1"},
                )
        headers = {"ETag": document.etag, "Cache-Control": "no-cache"}
        if etag_matches(request.headers.get("if-none-match"), document.revision):
            return Response(status_code=304, headers=headers)
        return Response(document.body, media_type="application/json", headers=headers)

    @router.post("/introspect")
    async def introspect(request: Request) -> Response:
        return await form_endpoint(request, "/introspect", partial(server.create_endpoint_response, "introspection"))

    @router.post("/register")
    async def register(request: Request) -> Response:
        try:
            body = await read_limited(request, max_body_bytes)
        except BodyTooLarge as exc:
            return JSONResponse({"error": "invalid_client_metadata", "error_description": str(exc)}, 413)
        try:
            # Client metadata nests a few levels; a depth cap keeps hostile input away from recursive code.
            data = parse_json(body, max_depth=16)
        except InvalidJson:
            data = None
        if not isinstance(data, dict):
            return JSONResponse(
                {"error": "invalid_client_metadata", "error_description": "the body must be a JSON object"}, 400
            )
        oauth_request = json_request(f"{identity.issuer}/register", request.headers, data)
        return oauth_json(
            await run_in_threadpool(server.create_endpoint_response, "client_registration", oauth_request)
        )

    @router.get("/userinfo")
    async def userinfo(request: Request) -> Response:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not value:
                raise ValueError("no bearer token")
            claims = await run_in_threadpool(server.tokens.verify, value.strip())
        except (ValueError, OAuth2Error):
            return JSONResponse(
                {"error": "invalid_token"}, 401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        keys = ("sub", "email", "groups", "business_groups")
        return JSONResponse({key: claims[key] for key in keys if key in claims})

    @router.get("/oauth-static/identity.css")
    async def stylesheet() -> FileResponse:
        return FileResponse(_HERE / "static" / "identity.css", headers={"Cache-Control": "public, max-age=3600"})

    return router


_EXPIRED = "This sign-in request expired or was already used. Go back to your application and start again."
