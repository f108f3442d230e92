"""The console's forms that act (POST): signing in and out, resolving a review item, changing a
subaccount's settings.

Guarantees: every one is refused (403) without the form's anti-forgery token
(``api.console.session.check_csrf``, run before each); a change needs the scope the API needs
(``admin``) and is appended through the same application code as the API's
(``projections.resolve.resolve``, ``ConsentLedger.update_subaccount``) with the signed-in key
as its actor (``key:<id>``), so each resolution is a log entry recorded by that key; a refused
change writes nothing and shows why, with what was typed kept in the form.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.exceptions import PermissionDeniedException
from litestar.params import PathParameter
from litestar.response import Redirect, Template

from api.console.forms import review_action, settings_changes, settings_form
from api.console.pages import ACTION_WORDS, KINDS, Req, page
from api.console.session import (
    COOKIE,
    PATH,
    SIGN_IN_COOKIE,
    ConsoleUser,
    SignInRefused,
    expired,
    session_cookie,
    sign_in,
    sign_in_cookie,
    sign_in_token,
    sign_out,
)
from api.routes.admin import subaccount_view
from api.routes.audit import review_view
from api.state import services_of
from ledger.errors import InvalidInput, NotFound
from projections import audit
from projections.ids import valid_subaccount
from projections.ledger import ConsentLedger
from projections.resolve import resolve

PUBLIC = {"exclude_from_auth": True}


def _next_path(value: object) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    text = str(value or "")
    if text.startswith(PATH + "/") and not text.startswith("//") and "\\" not in text:
        return text
    return PATH + "/"


def sign_in_page(
    request: Request[Any, Any, Any], status: int = 200, error: str | None = None, note: str = ""
) -> Template:
    """The sign-in form (with its anti-forgery token, set as a cookie too)."""
    token = sign_in_token(request)
    response = Template(
        template_name="sign_in.html.j2",
        context={
            "user": None,
            "csrf": token,
            "error": error,
            "note": note,
            "next": _next_path(request.query_params.get("next")),
        },
        status_code=status,
    )
    response.set_cookie(sign_in_cookie(request, token))
    return response


@get("/sign-in", name="console-sign-in", opt=PUBLIC)
async def sign_in_form(request: Request[Any, Any, Any]) -> Template:
    """The sign-in page."""
    signed_out = request.query_params.get("signed_out") == "1"
    return sign_in_page(request, note="You are signed out." if signed_out else "")


@post("/sign-in", name="console-sign-in-post", opt=PUBLIC, status_code=303)
async def sign_in_post(request: Request[Any, Any, Any]) -> Response[Any]:
    """Open a session for the pasted key and go to the page asked for."""
    form = await request.form()
    services = services_of(request.app)
    try:
        token, _ = await services.write(sign_in, services, str(form.get("key", "")))
    except SignInRefused as exc:
        return sign_in_page(request, 401, str(exc.detail))
    response: Response[Any] = Redirect(path=_next_path(form.get("next")), status_code=303)
    response.set_cookie(session_cookie(request, token))
    response.set_cookie(expired(SIGN_IN_COOKIE))
    return response


@post("/sign-out", name="console-sign-out", status_code=303)
async def sign_out_post(request: Req) -> Response[Any]:
    """End the session (for every worker at once) and forget its cookie."""
    services = services_of(request.app)
    token = request.cookies.get(COOKIE, "")
    await services.write(sign_out, services, token)
    response: Response[Any] = Redirect(path=f"{PATH}/sign-in?signed_out=1", status_code=303)
    response.set_cookie(expired(COOKIE))
    return response


def _admin(user: ConsoleUser) -> None:
    if not user.can_admin:
        raise PermissionDeniedException(
            detail="this key lacks the admin scope: sign in with a key that has it to change "
            "anything"
        )


@post("/review/{position:int}", name="console-review-resolve", status_code=303)
async def resolve_post(request: Req, position: Annotated[int, PathParameter()]) -> Response[Any]:
    """Resolve one review item as confirmed (``admin``)."""
    user = request.user
    _admin(user)
    if not 1 <= position < 2**63:
        raise NotFound(f"there is no review item at position {position}")
    form = await request.form()
    services = services_of(request.app)
    ledger = services.ledger
    target = str(form.get("subaccount", "")).strip() or None
    try:
        action = review_action(form)
        await services.write(
            lambda: resolve(
                ledger,
                user.tenant,
                position,
                action=action,
                note=str(form.get("note", "")),
                actor=user.principal.actor,
                subaccount=target,
                narrow=form.get("narrow") == "on",
            )
        )
    except InvalidInput as exc:
        context = await services.read(_review_context, ledger, user.tenant, position)
        chosen = str(form.get("action", ""))
        return page(
            request,
            "review_item.html.j2",
            422,
            **context,
            action=chosen if chosen in context["item"].actions else None,
            form={"note": form.get("note", ""), "subaccount": target or "",
                  "narrow": form.get("narrow") == "on"},
            error=str(exc),
        )  # fmt: skip
    return Redirect(path=f"{PATH}/review?resolved={position}", status_code=303)


@post("/subaccounts/{subaccount_id:str}", name="console-subaccount-save", status_code=303)
async def subaccount_post(
    request: Req, subaccount_id: Annotated[str, PathParameter()]
) -> Response[Any]:
    """Change (or register) a subaccount's settings (``admin``), validated as on the API."""
    user = request.user
    _admin(user)
    valid_subaccount(subaccount_id)
    form = await request.form()
    services = services_of(request.app)
    ledger = services.ledger
    try:
        changes = settings_changes(form)
        await services.write(
            lambda: ledger.update_subaccount(
                user.tenant, subaccount_id, actor=user.principal.actor, method="admin", **changes
            )
        )
    except InvalidInput as exc:
        settings = await services.read(ledger.settings, user.tenant, subaccount_id)
        return page(
            request,
            "subaccount.html.j2",
            422,
            sub=subaccount_view(settings) if settings else None,
            subaccount_id=subaccount_id,
            form={**settings_form(settings), **{k: str(v) for k, v in form.items()}},
            error=str(exc),
            saved=False,
        )
    where = quote(subaccount_id, safe="")
    return Redirect(path=f"{PATH}/subaccounts/{where}?saved=1", status_code=303)


def _review_context(ledger: ConsentLedger, tenant: str, position: int) -> dict[str, Any]:
    """What the confirmation page shows of one review item (read off the event loop)."""
    item = ledger.review_item(tenant, position)
    stored = audit.entries_at(ledger, tenant, [position])
    shown = review_view(
        item, stored[0] if stored else None, audit.evidence_of(ledger, [position]), ledger.clock()
    )
    return {
        "item": shown,
        "closed": item.closed_by,
        "closed_how": item.closed_how,
        "action_words": ACTION_WORDS,
        "kinds": KINDS,
        "subaccounts": [s.subaccount for s in ledger.subaccounts(tenant)],
    }


ROUTES = [sign_in_form, sign_in_post, sign_out_post, resolve_post, subaccount_post]
