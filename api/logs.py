"""Logging: structlog configured once; one line per request; msisdns never logged in full.

JSON lines in production, a console renderer on a TTY. The request line carries the request id
(``X-Request-ID``, generated when absent and echoed back), tenant, route template, status and
duration; the route *template* is logged, never the raw path, so numbers in paths stay out.
Each line is written with one ``write`` call, so lines from several worker processes sharing
stderr never interleave; the server's (uvicorn) and Litestar's own records are rendered the
same way. An unexpected error (answered 5xx) is logged with its traceback, the route template and
the request id — never the raw path.

In every format (console and JSON alike): a traceback is Python's plain one, never with local
variables (they hold keys, headers and numbers); free text (the message, the traceback, an error)
has every API key secret replaced by ``…`` and every phone number masked (``+65****8289``).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from typing import Any

import msgspec
import structlog
from litestar.exceptions import HTTPException
from litestar.logging.config import LoggingConfig
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics, problems, request_ids
from ledger.errors import LedgerError, MigrationError, StoreUnavailable
from ledger.msisdn import mask

_configured = False


def configure(fmt: str = "auto") -> None:
    """Configure structlog once per process (``json``, ``console`` or ``auto``)."""
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *_SAFE,
            _renderer(fmt),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )
    _configured = True


class _StderrLogger:
    """Writes each rendered line to the *current* ``sys.stderr`` with one ``write`` call."""

    _lock = threading.Lock()

    def msg(self, message: str) -> None:
        """Write one line."""
        with self._lock:
            stream = sys.stderr
            stream.write(message + "\n")
            stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _stderr_logger(*_args: Any) -> _StderrLogger:
    return _StderrLogger()


def _console(fmt: str) -> bool:
    return fmt == "console" or (fmt == "auto" and sys.stderr.isatty())


def _renderer(fmt: str) -> Any:
    if _console(fmt):
        # never the default (rich) formatter: it prints every frame's local variables
        return structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    return structlog.processors.JSONRenderer(serializer=_json)


_SECRET = re.compile(r"(?<![A-Za-z0-9])(cl_[a-z0-9]{12}_)[A-Za-z0-9_-]+")
_NUMBER = re.compile(r"(?<![\w%])(\+|%2[Bb])?(\d{7,15})(?!\w)")
_FREE_TEXT = ("event", "exception", "error", "traceback", "detail", "reason")
"""The fields of a log line that may hold text nobody checked (messages, exception texts)."""


def _masked(match: re.Match[str]) -> str:
    return (match.group(1) or "") + mask(match.group(2))


def redact(text: str) -> str:
    """``text`` with every API key secret cut (``cl_<id>_…``) and every run of 7 to 15 digits
    (a phone number, with or without ``+``) masked like a logged msisdn (``+65****8289``)."""
    return _NUMBER.sub(_masked, _SECRET.sub(r"\1…", text))


def _redact_free_text(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Processor: ``redact`` every free-text field of a log line."""
    for key in _FREE_TEXT:
        value = event.get(key)
        if isinstance(value, str):
            event[key] = redact(value)
    return event


_SAFE = (structlog.processors.format_exc_info, _redact_free_text)
"""Before any renderer: exceptions as plain tracebacks without locals, then free text redacted."""


_ENCODER = msgspec.json.Encoder(enc_hook=repr)  # anything else in an event: its repr


def _json(event: Any, **_kwargs: Any) -> str:
    """One JSON line (msgspec: several times faster than ``json.dumps``)."""
    return _ENCODER.encode(event).decode()


def server_formatter(fmt: str = "auto") -> logging.Formatter:
    """A stdlib formatter rendering foreign records (uvicorn's) like our own log lines."""
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_SAFE,
            _renderer(fmt),
        ],
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
    )


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A logging handler writing each record, in one ``write``, to the *current* ``sys.stderr``."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        """Whatever ``sys.stderr`` is now."""
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


_FORMATTER = {"()": "api.logs.server_formatter"}
_HANDLER = {"class": "api.logs.StderrHandler", "formatter": "structlog"}


def server_log_config(fmt: str = "auto") -> dict[str, Any]:
    """``logging.config.dictConfig`` for the ASGI server: its records in our format on stderr,
    INFO and above; no access log (the request line above replaces it). Picklable, so worker
    processes apply it too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": {**_FORMATTER, "fmt": fmt}},
        "handlers": {"stderr": _HANDLER},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def app_logging_config(fmt: str = "auto") -> LoggingConfig:
    """Litestar's logging: its records and other libraries' warnings rendered like our lines on
    stderr; unexpected errors logged with a traceback (see ``log_unexpected``)."""
    return LoggingConfig(
        formatters={"structlog": {**_FORMATTER, "fmt": fmt}},
        handlers={"stderr": dict(_HANDLER)},
        loggers={"litestar": {"level": "INFO", "handlers": ["stderr"], "propagate": False}},
        root={"level": "WARNING", "handlers": ["stderr"]},
        log_exceptions="always",
        exception_logging_handler=log_unexpected,
    )


def log_unexpected(logger: Any, scope: Scope, _traceback: list[str]) -> None:
    """Log the exception being handled if it is answered 5xx (a bug or an outage), with its
    traceback, the route template and the request id; refusals (4xx) are not logged here, the
    request line records them, nor are 503 problems raised on purpose (``problems.unavailable``
    logs their cause)."""
    exc = sys.exc_info()[1]
    if isinstance(exc, LedgerError) and not isinstance(exc, StoreUnavailable | MigrationError):
        return
    if exc is not None and problems.client_fault(exc) is not None:  # answered 4xx
        return
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        return
    if isinstance(exc, ProblemDetailsException) and exc.status_code == 503:
        return  # an outage answered on purpose: its cause was logged where it was raised
    request_id = scope.get("state", {}).get("request_id")
    logger.exception("unexpected error (route=%s, request_id=%s)", _route(scope), request_id)


def _route(scope: Scope) -> str:
    handler = scope.get("route_handler")
    template = scope.get("path_template")
    if template:
        return str(template)
    if handler is not None and getattr(handler, "paths", None):
        return str(sorted(handler.paths)[0])
    return "unmatched"


def request_log_middleware(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: request id, one log line and the request metrics per HTTP request."""
    log = structlog.get_logger("consent_ledger.http")

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        request_id = request_ids.chosen(headers.get(b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_ids.enter(request_id)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            request_ids.leave(token)
            elapsed = time.perf_counter() - start
            route = _route(scope)
            user = scope.get("user")
            metrics.observe_request(route, scope["method"], status, elapsed)
            log.info(
                "request",
                request_id=request_id,
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                tenant=getattr(user, "tenant", None),
                key=getattr(user, "key_id", None),
            )

    return middleware
