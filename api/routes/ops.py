"""Operational endpoints: liveness, readiness and Prometheus metrics (no key needed)."""

from __future__ import annotations

import sqlite3

from litestar import MediaType, Response, get
from litestar.di import NamedDependency

from api import metrics
from api.problems import problem
from api.state import Services
from ledger.errors import MigrationError
from ledger.migrate import pending


@get(
    "/healthz",
    exclude_from_auth=True,
    media_type=MediaType.JSON,
    tags=["operations"],
    sync_to_thread=False,
    summary="The process is up",
)
def healthz() -> dict[str, str]:
    """Liveness: answers while the process runs."""
    return {"status": "ok"}


@get(
    "/readyz",
    exclude_from_auth=True,
    tags=["operations"],
    sync_to_thread=True,
    summary="The database is reachable and its schema is current",
)
def readyz(services: NamedDependency[Services]) -> dict[str, str | int]:
    """Readiness: the database answers and no migration is pending (else 503)."""
    try:
        conn = services.ledger.store.reader()
        todo = pending(conn)
        head = services.ledger.head()
    except (sqlite3.Error, MigrationError) as exc:
        raise problem(503, f"database not ready: {exc}", kind="not-ready") from exc
    if todo:
        raise problem(
            503, f"migrations pending: {', '.join(m.name for m in todo)}", kind="not-ready"
        )
    return {"status": "ready", "log_position": head}


@get(
    "/metrics",
    exclude_from_auth=True,
    media_type=MediaType.TEXT,
    tags=["operations"],
    sync_to_thread=True,
    summary="Prometheus metrics",
    include_in_schema=True,
)
def metrics_endpoint(services: NamedDependency[Services]) -> Response[bytes]:
    """Prometheus exposition of every worker's counters and the database gauges."""
    body = metrics.render(services.ledger.store.reader())
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


ROUTES = [healthz, readyz, metrics_endpoint]
