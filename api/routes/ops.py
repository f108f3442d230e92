"""Operational endpoints: liveness, readiness (no key needed) and Prometheus metrics (no key
needed unless the deployment's ``metrics`` setting is ``key``).

Guarantees: readiness answers 200 only when the database answers, its schema is current and a
write could start now; otherwise 503 with a generic detail, the cause (driver error, migration
names) going only to the log.
"""

from __future__ import annotations

from litestar import MediaType, Response, get
from litestar.di import NamedDependency

from api import metrics
from api.problems import unavailable
from api.state import Services
from ledger.errors import LedgerError

NOT_READY = "the service is not ready"


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
    summary="The database is reachable, its schema is current and it can be written",
)
def readyz(services: NamedDependency[Services]) -> dict[str, str | int]:
    """Readiness: the database answers, no migration is pending, and a write could start now
    (checked without writing anything); else 503."""
    ledger = services.ledger
    try:
        todo = ledger.read_model.pending_migrations()
        if todo:
            raise unavailable("not-ready", NOT_READY, f"migrations pending: {', '.join(todo)}")
        head = ledger.read_model.head()
        ledger.store.probe_write()
    except LedgerError as exc:
        raise unavailable("not-ready", NOT_READY, exc) from exc
    return {"status": "ready", "log_position": head}


@get(
    "/metrics",
    media_type=MediaType.TEXT,
    tags=["operations"],
    sync_to_thread=True,
    summary="Prometheus metrics",
    description="Public by default. A deployment whose `metrics` setting is `key` answers only "
    "a key with the `metrics` scope, or an operator key (401 and 403 otherwise).",
    opt={"scope": "metrics", "any_key": True, "problems": (401, 403)},
    include_in_schema=True,
)
def metrics_endpoint(services: NamedDependency[Services]) -> Response[bytes]:
    """Prometheus exposition of every worker's counters and the database gauges (the auth
    middleware lets every request through when metrics are public)."""
    body = metrics.render(services.ledger.read_model, services.ledger.clock())
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


ROUTES = [healthz, readyz, metrics_endpoint]
