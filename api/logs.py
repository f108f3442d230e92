"""Logging: structlog configured once; one line per request; msisdns never logged in full.

JSON lines in production, a console renderer on a TTY. The request line carries the request id
(``X-Request-ID``, generated when absent and echoed back), tenant, route template, status and
duration; the route *template* is logged, never the raw path, so numbers in paths stay out.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics

_configured = False


def configure(fmt: str = "auto") -> None:
    """Configure structlog once per process (``json``, ``console`` or ``auto``)."""
    global _configured
    if _configured:
        return
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = True


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
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = _route(scope)
            user = scope.get("user")
            metrics.REQUESTS.labels(route, scope["method"], str(status)).inc()
            metrics.LATENCY.labels(route).observe(elapsed)
            log.info("request", request_id=request_id, method=scope["method"], route=route,
                     status=status, duration_ms=round(elapsed * 1000, 2),
                     tenant=getattr(user, "tenant", None), key=getattr(user, "key_id", None))

    return middleware
