"""The review queue page and the review sign-off form: writes go through `service` and the policy engine exactly
as the API's do; their errors become a message on the page, never a trace."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from registry import service
from registry.api import Registry
from registry.errors import AuthzUnavailable, Conflict, Forbidden, InvalidRequest, NotFound, RegistryError
from registry.identity import RegistryCaller
from registry.ui.forms import local_path, read_form
from registry.ui.pages import Pages
from registry.ui.session import SessionDep
from registry.ui.views import review_states

__all__ = ["review_routes"]

_REFUSALS = {
    "not_in_review_group": "you are not a member of {group}, the group that signs the {review} review",
    "own_submission": "you published this version, so someone else must review it (four-eyes rule)",
}


def review_routes(registry: Registry, pages: Pages) -> APIRouter:
    """`GET /ui/reviews` (the queue) and `POST /ui/reviews` (sign one review off: approve | reject)."""
    settings = registry.settings
    router = APIRouter(include_in_schema=False)

    @router.get("/ui/reviews", response_class=HTMLResponse)
    def reviews(session: SessionDep) -> HTMLResponse:
        caller = session.caller
        items = []
        with registry.reading() as db:
            for row in service.pending_queue(db):
                _, signed = service.history(db, row=row)
                states = review_states(settings.reviews, signed)
                items.append(
                    {"row": row, "reviews": states, "governance": service.governance_of(row),
                     "passed": sum(s.state == "passed" for s in states),
                     "signable": {s.review for s in states if caller and s.group in caller.groups
                                  and s.state != "passed"},
                     "own": caller is not None and row.published_by == caller.id}
                )  # fmt: skip
        return pages.render(session, "reviews.html", path="/ui/reviews", items=items, required=settings.reviews)

    @router.post("/ui/reviews")
    async def sign_review(request: Request, session: SessionDep) -> Response:
        form = await read_form(request)
        if not session.csrf_matches(form.get("csrf_token")):
            return await run_in_threadpool(pages.form_expired, session)
        caller = session.caller
        if caller is None:
            session.flash("error", "Sign in to sign off reviews.")
            return pages.redirect("/ui/login?" + urlencode({"next": "/ui/reviews"}))
        kind, text = await run_in_threadpool(_sign, registry, caller, form)
        session.flash(kind, text)
        return pages.redirect(local_path(form.get("next") or "/ui/reviews"))

    return router


def _sign(registry: Registry, caller: RegistryCaller, form: dict[str, str]) -> tuple[str, str]:
    """Sign one review off as the form says; a (kind, message) for the page either way."""
    name, version = form.get("server", ""), form.get("version", "")
    review, decision = form.get("review", ""), form.get("decision", "")
    reason = form.get("reason", "").strip()[:500]
    settings = registry.settings
    try:
        with registry.writing() as db:
            row = service.find_version(db, name=name, version=version, lock=True)
            service.sign_off(
                db, row=row, review=review, decision=decision, reason=reason, caller=caller,
                authz=registry.authz, required_reviews=settings.reviews,
            )  # fmt: skip
            title, lifecycle = f"{row.title or row.server_name} {row.version}", row.lifecycle
    except RegistryError as exc:
        return "error", _explain(exc, settings.reviews, review)
    verb = "approved" if decision == "approve" else "rejected"
    text = f"The {review} review of {title} is {verb}."
    if lifecycle == "approved":
        text += f" Every required review passed: {title} is now approved and reaches the gateway."
    elif lifecycle == "rejected":
        text += f" {title} is now rejected."
    return "success", text


def _explain(exc: RegistryError, settings_reviews: dict[str, str], review: str) -> str:
    if isinstance(exc, Forbidden):
        reason = str(exc.details.get("reason", ""))
        text = _REFUSALS.get(reason, "this action is not allowed for you")
        group = settings_reviews.get(review, "")
        return f"The policy refused this sign-off: {text.format(group=group, review=review)} ({reason or 'denied'})."
    if isinstance(exc, NotFound):
        return "That server version does not exist any more."
    if isinstance(exc, AuthzUnavailable | Conflict | InvalidRequest):
        return exc.message[:1].upper() + exc.message[1:] + ("" if exc.message.endswith(".") else ".")
    return exc.message
