"""Domain errors and HTTP errors as RFC 9457 problem details (``application/problem+json``).

Guarantees: a 5xx answer never carries internals (paths, driver error text, migration names,
exception text): its detail is generic and it names the request id (``request_id``, also in the
``X-Request-ID`` header) under which the cause is logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from copy import copy
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec
import structlog
from litestar.config.app import AppConfig
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from api import request_ids
from api.auth import PUBLIC_PATHS
from ledger.errors import (
    Conflict,
    InvalidInput,
    LedgerError,
    MigrationError,
    NotFound,
    Stale,
    StoreUnavailable,
)

_log = structlog.get_logger("consent_ledger.errors")
PROBLEM_BASE = "https://consent-ledger.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> ProblemDetailsException:
    """A problem details exception with a stable ``type`` URI per kind of problem."""
    phrase = HTTPStatus(status).phrase
    slug = kind or phrase.lower().replace(" ", "-")
    return ProblemDetailsException(
        status_code=status,
        title=phrase,
        detail=detail,
        type_=PROBLEM_BASE + slug,
        headers=headers,
        extra=extra,
    )


INTERNAL = "internal error; the request id names it in our logs"
_IN_OUR_LOGS = "retry later; the request id names the cause in our logs"


def server_side(
    status: int, detail: str, *, kind: str | None, headers: dict[str, str] | None = None
) -> ProblemDetailsException:
    """A 5xx problem: ``detail`` (generic: it never names a path, a driver's error or anything
    else inside the service) and the request id under which the cause is logged."""
    request_id = request_ids.current()
    extra = {"request_id": request_id} if request_id is not None else None
    return problem(status, detail, kind=kind, headers=headers, extra=extra)


def unavailable(
    kind: str, detail: str, cause: object, *, retry_after: int = 5
) -> ProblemDetailsException:
    """A 503 problem for something the service cannot do now: ``detail`` (generic) for the
    client, ``cause`` (a path, a driver's error, a migration's name …) logged, with the request
    id, and never answered. Carries Retry-After."""
    _log.warning("unavailable", kind=kind, error=str(cause), request_id=request_ids.current())
    headers = {"Retry-After": str(retry_after)}
    return server_side(503, f"{detail}; {_IN_OUR_LOGS}", kind=kind, headers=headers)


_STATUS: tuple[tuple[type[LedgerError], int, str], ...] = (
    (StoreUnavailable, 503, "store-unavailable"),
    (Stale, 503, "settings-changing"),
    (MigrationError, 503, "schema-not-current"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "idempotency-conflict"),
    (InvalidInput, 422, "invalid-input"),
)
_UNAVAILABLE = {
    "store-unavailable": "the store cannot take this request now",
    "settings-changing": "the settings this request depends on kept changing; retry",
    "schema-not-current": "the database schema is not current",
}


def from_domain(exc: LedgerError) -> ProblemDetailsException:
    """Map a domain error to its problem. A 503 (an outage) carries Retry-After and a generic
    detail, its cause being logged with its traceback (``api.logs.log_unexpected``)."""
    for kind, status, slug in _STATUS:
        if isinstance(exc, kind):
            if status == 503:
                detail = f"{_UNAVAILABLE[slug]}; {_IN_OUR_LOGS}"
                return server_side(503, detail, kind=slug, headers={"Retry-After": "5"})
            return problem(status, str(exc), kind=slug)
    return server_side(500, INTERNAL, kind="internal")


def from_http(exc: HTTPException) -> ProblemDetailsException:
    """Litestar's own HTTP errors (400 validation, 401, 404 route, 413 …) as problems."""
    extra: dict[str, Any] | None = None
    if isinstance(exc, ValidationException) and exc.extra:
        extra = {"errors": exc.extra if isinstance(exc.extra, list) else [exc.extra]}
    elif isinstance(exc.extra, Mapping):
        extra = dict(exc.extra)
    if exc.status_code >= 500:
        _log.error(
            "http_exception",
            status=exc.status_code,
            detail=exc.detail,
            request_id=request_ids.current(),
        )
        kind = "internal" if exc.status_code == 500 else None
        return server_side(exc.status_code, INTERNAL, kind=kind, headers=exc.headers)
    return problem(exc.status_code, exc.detail, headers=exc.headers, extra=extra)


def client_fault(exc: BaseException) -> ProblemDetailsException | None:
    """The problem for an exception that input no check upstream caught causes, and is the
    client's to fix: JSON nested too deeply to decode (400), an integer beyond what SQLite
    stores (422); ``None`` for any other exception."""
    if isinstance(exc, RecursionError) and "deserializing" in str(exc):
        return problem(400, "the request body is nested too deeply", kind="nested-too-deeply")
    if isinstance(exc, OverflowError) and "SQLite INTEGER" in str(exc):
        return problem(
            422, "a number in the request is out of range (at most 2^63 − 1)", kind="invalid-input"
        )
    return None


def from_unexpected(exc: Exception) -> ProblemDetailsException:
    """Any other exception: answered as a 500 problem (no details; logged with its traceback
    by ``api.logs.log_unexpected``), unless it is the client's fault (``client_fault``)."""
    known = client_fault(exc)
    if known is not None:
        return known
    return server_side(500, INTERNAL, kind="internal")


def from_unicode(exc: UnicodeDecodeError) -> ProblemDetailsException:
    """A request body that is not UTF-8 (Litestar's JSON decoding raises this, not a 400)."""
    return problem(
        400, f"the request body is not valid UTF-8 (byte {exc.start})", kind="invalid-utf-8"
    )


class Problem(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem details document, as every error is answered."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None
    """What failed validation (400 for a body or parameter that is not the schema)."""
    request_id: str | None = None
    """On a 5xx: the request's id (as in ``X-Request-ID``), under which its cause is logged."""


_ALWAYS = (401, 403, 503)  # no key or a bad one; the key may not use this route; store outage
_READS = (400, 404, 422)
_WRITES = (409, 413)
_PUBLIC = {"/readyz": (503,)}


def problem_statuses(handler: HTTPRouteHandler) -> tuple[int, ...]:
    """The problem statuses ``handler`` may answer: those in its ``opt["problems"]`` if given;
    else every authenticated route may refuse the key, be unavailable, or refuse input, and
    routes that write may also conflict or be too large."""
    if "problems" in handler.opt:  # the route names its own
        return tuple(handler.opt["problems"])
    paths = sorted(handler.paths)
    if all(any(re.match(public, path) for public in PUBLIC_PATHS) for path in paths):
        return tuple(sorted({s for path in paths for s in _PUBLIC.get(path, ())}))
    writes = bool(handler.http_methods & {"POST", "PUT", "PATCH", "DELETE"})
    return _ALWAYS + _READS + (_WRITES if writes else ())


def documented(handler: HTTPRouteHandler) -> HTTPRouteHandler:
    """A copy of ``handler`` whose OpenAPI responses also list its problem statuses as
    ``application/problem+json`` (responses the handler declares itself are kept)."""
    specs: dict[int, ResponseSpec] = {
        status: ResponseSpec(
            Problem,
            description=f"{HTTPStatus(status).phrase} (RFC 9457 problem details)",
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in problem_statuses(handler)
    }
    out = copy(handler)
    out.responses = {**specs, **(handler.responses or {})}
    if "media_types" in handler.opt:
        out.operation_class = _also_as(handler.operation_class, handler.opt["media_types"])
    return out


def _also_as(base: type[Operation], media_types: Mapping[int, Sequence[str]]) -> type[Operation]:
    """``base`` whose responses also name ``media_types`` (status -> alternative media types of
    that response, e.g. ``{200: ("text/csv",)}`` for a route with ``format=csv``)."""

    @dataclass
    class _Operation(base):  # type: ignore[valid-type,misc]
        def __post_init__(self) -> None:
            getattr(super(), "__post_init__", lambda: None)()
            for status, types in media_types.items():
                response = (self.responses or {}).get(str(status))
                if isinstance(response, OpenAPIResponse):
                    response.content = response.content or {}
                    for media_type in types:
                        response.content.setdefault(
                            media_type, OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
                        )

    return _Operation


class _Plugin(ProblemDetailsPlugin):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config = super().on_app_init(app_config)
        app_config.route_handlers = [
            documented(h) if isinstance(h, HTTPRouteHandler) else h
            for h in app_config.route_handlers
        ]
        return app_config


def plugin() -> ProblemDetailsPlugin:
    """The problem-details plugin with our mappings installed; it also documents every route's
    problem responses in the OpenAPI schema."""
    mapping: dict[type[Exception], Callable[[Any], ProblemDetailsException]] = {
        LedgerError: from_domain,
        HTTPException: from_http,
        UnicodeDecodeError: from_unicode,
        Exception: from_unexpected,
    }
    return _Plugin(ProblemDetailsConfig(exception_to_problem_detail_map=mapping))
