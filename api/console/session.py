"""Console sessions: signing in with an API key, the session cookie, and anti-forgery tokens.

Guarantees:
- a session is opened only for a valid, unrevoked tenant key with the ``audit`` scope; the key
  itself is never stored nor put in a cookie: the browser holds a random session token, the
  store only its SHA-256 (``ledger.store.SessionTable``), so every worker and node knows it;
- the session cookie is ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when the request came
  over HTTPS (behind a proxy: when the server trusts its ``X-Forwarded-Proto``), scoped to
  ``/console``, and ends after ``SESSION_SECONDS`` at the latest;
- every request re-reads the session and its key: a signed-out session, an expired one, or one
  whose key was revoked is refused at once, by every worker;
- every form sent with POST carries the session's anti-forgery token (the sign-in form, which
  comes before any session, a token matched against a ``SameSite=Strict`` cookie); a POST
  without the right token is refused (403) before its handler runs, and nothing changes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from api.keys import Principal, authenticate
from api.state import Services, services_of
from ledger.store import ConsoleSession
from ledger.timefmt import format_time

PATH = "/console"
COOKIE = "cl_console"
SIGN_IN_COOKIE = "cl_console_sign_in"
CSRF_FIELD = "_csrf_token"
SESSION_SECONDS = 8 * 3600
"""A session ends this long after sign-in, whatever happens."""
REQUIRED_SCOPE = "audit"


class ConsoleUser(msgspec.Struct, frozen=True):
    """Who a console request acts as: the key's principal and the session it signed in."""

    principal: Principal
    csrf_token: str
    expires_at: str

    @property
    def tenant(self) -> str:
        """The tenant every page shows and acts on."""
        assert self.principal.tenant is not None  # sign-in refuses operator keys
        return self.principal.tenant

    @property
    def can_admin(self) -> bool:
        """Whether the key may change things (resolve review items, edit subaccounts)."""
        return "admin" in self.principal.scopes


class SignInRefused(NotAuthorizedException):
    """The pasted key cannot open a console session (the detail says why)."""


def digest(token: str) -> bytes:
    """What the store keeps of a session token."""
    return hashlib.sha256(token.encode()).digest()


def sign_in(services: Services, presented: str) -> tuple[str, ConsoleSession]:
    """Open a session for ``presented`` (a pasted API key): the token for the cookie and the
    stored session. ``SignInRefused`` when the key is not valid, revoked, an operator key, or
    lacks the ``audit`` scope."""
    ledger = services.ledger
    principal = authenticate(ledger.store.keys(), presented.strip())
    if principal is None:
        raise SignInRefused("that API key is not valid or has been revoked")
    if principal.operator:
        raise SignInRefused(
            "operator keys act on the whole log; sign in with a tenant key that has the audit scope"
        )
    if REQUIRED_SCOPE not in principal.scopes:
        raise SignInRefused("this key lacks the audit scope the console needs")
    token = secrets.token_urlsafe(32)
    now = ledger.clock()
    session = ConsoleSession(
        token_sha256=digest(token),
        key_id=principal.key_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=format_time(now),
        expires_at=format_time(now + timedelta(seconds=SESSION_SECONDS)),
    )
    ledger.store.sessions().start(session, format_time(now))
    return token, session


def current_user(services: Services, token: str) -> ConsoleUser | None:
    """The user of session ``token``, or ``None`` when it ended, expired, or its key was
    revoked since."""
    ledger = services.ledger
    session = ledger.store.sessions().get(digest(token), ledger.now())
    if session is None:
        return None
    key = ledger.store.keys().by_id(session.key_id)
    if key is None or key.revoked_at is not None or key.tenant is None:
        return None
    principal = Principal(key.id, key.tenant, frozenset(key.scopes))
    return ConsoleUser(principal, session.csrf_token, session.expires_at)


def sign_out(services: Services, token: str) -> None:
    """End session ``token`` (for every worker at once)."""
    services.ledger.store.sessions().end(digest(token))


def session_cookie(request: Request[Any, Any, Any], token: str) -> Cookie:
    """The cookie that carries a session token."""
    return Cookie(
        key=COOKIE,
        value=token,
        path=PATH,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def sign_in_token(request: Request[Any, Any, Any]) -> str:
    """The anti-forgery token of the sign-in form: the one its cookie already holds, or new."""
    return request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(32)


def sign_in_cookie(request: Request[Any, Any, Any], token: str) -> Cookie:
    """The cookie the sign-in form's token is matched against."""
    return Cookie(
        key=SIGN_IN_COOKIE,
        value=token,
        path=PATH,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def expired(key: str) -> Cookie:
    """A cookie that deletes ``key``."""
    return Cookie(key=key, value="", path=PATH, max_age=0, httponly=True, samesite="strict")


class SessionMiddleware(AbstractAuthenticationMiddleware):
    """Resolves the session cookie to a ``ConsoleUser`` (``request.user``); raises
    ``NotAuthorizedException`` when there is no live session."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """The signed-in user, or 401 (the console answers it with the sign-in page)."""
        token = connection.cookies.get(COOKIE)
        user = None
        if token:
            services = services_of(connection.app)
            user = await services.read(current_user, services, token)
        if user is None:
            raise NotAuthorizedException(detail="sign in to use the console")
        return AuthenticationResult(user=user, auth=token)


async def check_csrf(request: Request[Any, Any, Any]) -> None:
    """Refuse (403) a POST whose form lacks the right anti-forgery token (a ``before_request``
    hook of every console route)."""
    if request.method != "POST":
        return
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    user = request.scope.get("user")
    expected = (
        user.csrf_token if isinstance(user, ConsoleUser) else request.cookies.get(SIGN_IN_COOKIE)
    )
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise PermissionDeniedException(
            detail="this form's anti-forgery token is missing or out of date; reload the page "
            "and send it again"
        )


def token_cookie_response(response: Response[Any], *cookies: Cookie) -> Response[Any]:
    """``response`` setting ``cookies``."""
    for cookie in cookies:
        response.set_cookie(cookie)
    return response
