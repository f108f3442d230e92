"""Domain errors and HTTP errors as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import structlog
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from ledger.errors import (
    Conflict,
    InvalidInput,
    LedgerError,
    MigrationError,
    NotFound,
    StoreUnavailable,
)

_log = structlog.get_logger("consent_ledger.errors")
PROBLEM_BASE = "https://consent-ledger.dev/problems/"


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


_STATUS: tuple[tuple[type[LedgerError], int, str], ...] = (
    (StoreUnavailable, 503, "store-unavailable"),
    (MigrationError, 503, "schema-not-current"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "idempotency-conflict"),
    (InvalidInput, 422, "invalid-input"),
)


def from_domain(exc: LedgerError) -> ProblemDetailsException:
    """Map a domain error to its problem (503 carries Retry-After)."""
    for kind, status, slug in _STATUS:
        if isinstance(exc, kind):
            headers = {"Retry-After": "5"} if status == 503 else None
            return problem(status, str(exc), kind=slug, headers=headers)
    return problem(500, "internal error", kind="internal")


def from_http(exc: HTTPException) -> ProblemDetailsException:
    """Litestar's own HTTP errors (400 validation, 401, 404 route, 413 …) as problems."""
    extra: dict[str, Any] | None = None
    if isinstance(exc, ValidationException) and exc.extra:
        extra = {"errors": exc.extra if isinstance(exc.extra, list) else [exc.extra]}
    elif isinstance(exc.extra, Mapping):
        extra = dict(exc.extra)
    if exc.status_code >= 500 and exc.status_code != 503:
        _log.error("http_exception", status=exc.status_code, detail=exc.detail)
        return problem(exc.status_code, "internal error; the request id names it in our logs")
    return problem(exc.status_code, exc.detail, headers=exc.headers, extra=extra)


def from_unexpected(exc: Exception) -> ProblemDetailsException:
    """Any other exception: logged with its traceback, answered as a 500 problem (no details)."""
    _log.error("unhandled_exception", exc_info=exc)
    return problem(500, "internal error; the request id names it in our logs", kind="internal")


def from_unicode(exc: UnicodeDecodeError) -> ProblemDetailsException:
    """A request body that is not UTF-8 (Litestar's JSON decoding raises this, not a 400)."""
    return problem(
        400, f"the request body is not valid UTF-8 (byte {exc.start})", kind="invalid-utf-8"
    )


def plugin() -> ProblemDetailsPlugin:
    """The problem-details plugin with our mappings installed."""
    mapping: dict[type[Exception], Callable[[Any], ProblemDetailsException]] = {
        LedgerError: from_domain,
        HTTPException: from_http,
        UnicodeDecodeError: from_unicode,
        Exception: from_unexpected,
    }
    return ProblemDetailsPlugin(ProblemDetailsConfig(exception_to_problem_detail_map=mapping))
