"""Errors on console pages: answered as pages people read, not as problem details.

Guarantees: the status is the API's for the same error (``api.problems``: 404 for what does not
exist or is another tenant's, 409 for a conflict, 422 for bad input, 503 for an outage); a
request without a live session is sent to the sign-in page (a GET comes back to where it was
going); a 5xx page never shows internals, only the request id under which the cause is logged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap

from api import problems
from api.console.session import PATH
from ledger.errors import LedgerError


def _page(request: Request[Any, Any, Any], status: int, detail: str) -> Response[Any]:
    user = request.scope.get("user")
    return Template(
        template_name="error.html.j2",
        context={"user": user, "status": status, "detail": detail, "path": request.url.path},
        status_code=status,
    )


def not_signed_in(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    """To the sign-in page (a GET comes back afterwards)."""
    if request.method == "GET":
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return Redirect(path=f"{PATH}/sign-in?next={target}", status_code=303)
    return _page(request, 401, "Your session has ended. Sign in again, then send the form again.")


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Litestar's HTTP errors (403, 404, 405, validation) as a page."""
    shown = problems.from_http(exc)
    return _page(request, shown.status_code, str(shown.detail))


def domain_error(request: Request[Any, Any, Any], exc: LedgerError) -> Response[Any]:
    """A domain error as a page with the API's status for it."""
    shown = problems.from_domain(exc)
    return _page(request, shown.status_code, str(shown.detail))


def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Anything else: a 500 page naming the request id only."""
    shown = problems.from_unexpected(exc)
    request_id = (shown.extra or {}).get("request_id") if isinstance(shown.extra, dict) else None
    detail = str(shown.detail) + (f" (request id {request_id})" if request_id else "")
    return _page(request, shown.status_code, detail)


HANDLERS: ExceptionHandlersMap = {
    NotAuthorizedException: not_signed_in,
    HTTPException: http_error,
    LedgerError: domain_error,
    Exception: unexpected,
}
