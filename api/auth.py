"""Authentication (API keys by Bearer or Basic) and scope guards.

Guarantees: every route except health, readiness, the schema and (unless the ``metrics`` setting
is ``key``) metrics needs a valid, unrevoked key (looked up in the database on every request,
off the event loop, so a revoked key is refused at once by every worker); a route's required
scope is declared in its ``opt`` (``opt={"scope": "check"}``) and checked before the handler
runs; tenant routes refuse operator keys and operator-only routes refuse tenant keys; every
refused webhook request is counted (a misconfigured key means lost STOPs); a malformed
``Authorization`` header (not base64, not ASCII, not UTF-8) is refused like a wrong key (401),
never an error.
"""

from __future__ import annotations

import base64
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from api import metrics
from api.keys import Principal, authenticate
from api.state import services_of
from projections.ledger import ConsentLedger

PUBLIC_PATHS = ["^/healthz$", "^/readyz$", "^/schema"]
"""Paths that never need a key."""
METRICS_PATH = "^/metrics$"


def public_paths(metrics: str) -> list[str]:
    """The paths served without a key: ``PUBLIC_PATHS``, and ``/metrics`` unless the
    ``metrics`` setting is ``key``."""
    return PUBLIC_PATHS + ([METRICS_PATH] if metrics == "public" else [])


WEBHOOK_PREFIX = "/v1/webhooks/"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="consent-ledger", Basic realm="consent-ledger"'}


def presented_key(header: str | None) -> str | None:
    """The key inside an ``Authorization`` header (Bearer, or Basic with the key as password)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
            user, _, password = decoded.partition(":")
        except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8
            return None
        return password or user or None
    return None


def _lookup(ledger: ConsentLedger, key: str) -> Principal | None:
    return authenticate(ledger.store.keys(), key)


class KeyAuthMiddleware(AbstractAuthenticationMiddleware):
    """Resolves the request's API key to a ``Principal`` (``request.user``) and refuses a key
    the route does not accept (see ``authorize``)."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """Authenticate (or raise 401, counted for webhooks), then authorize (or raise 403)."""
        key = presented_key(connection.headers.get("authorization"))
        principal = None
        if key is not None:
            services = services_of(connection.app)
            principal = await services.read(_lookup, services.ledger, key)
        if principal is None:
            reason = "missing" if key is None else "invalid"
            if connection.scope["path"].startswith(WEBHOOK_PREFIX):
                metrics.WEBHOOK_AUTH_FAILURES.labels(reason).inc()
            raise NotAuthorizedException(
                detail="an API key is required (Authorization: Bearer <key>)"
                if key is None
                else "the API key is not valid or has been revoked",
                headers=_CHALLENGE,
            )
        authorize(connection, principal, connection.scope["route_handler"])
        return AuthenticationResult(user=principal, auth=principal.key_id)


def authorize(
    connection: ASGIConnection[Any, Any, Any, Any],
    principal: Principal,
    handler: BaseRouteHandler,
) -> None:
    """Refuse (403) a key without the route's scope, or of the wrong kind for the route.

    Done by the middleware, not by a Litestar guard: a guard copies the route handler on every
    request, and this check only reads the principal and the handler's ``opt``.
    """
    need: str | None = handler.opt.get("scope")
    operator_route = handler.opt.get("operator", False)
    any_key = handler.opt.get("any_key", False)
    refused = None
    if operator_route and not principal.operator:
        refused = "this route needs an operator key"
    elif not operator_route and not any_key and principal.operator:
        refused = "operator keys act on the log; use a tenant key for this route"
    elif need and not principal.operator and need not in principal.scopes:
        refused = f"this key lacks the {need!r} scope"
    if refused:
        if connection.scope["path"].startswith(WEBHOOK_PREFIX):
            metrics.WEBHOOK_AUTH_FAILURES.labels("scope").inc()
        raise PermissionDeniedException(detail=refused)


def tenant_of(principal: Principal) -> str:
    """The tenant a tenant-scoped request acts on."""
    if principal.tenant is None:
        raise PermissionDeniedException(detail="this route needs a tenant key")
    return principal.tenant
