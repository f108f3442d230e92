"""Prometheus metrics, correct with several worker processes.

Counters and histograms go through prometheus_client's multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set (``consent-ledger serve`` sets it before workers start);
gauges that describe the database (quarantine size, review backlog, projection lag) are read
from the database at scrape time, so every worker reports the same value.
"""

from __future__ import annotations

import os
import sqlite3

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

REQUESTS = Counter("consent_ledger_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "consent_ledger_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
APPENDS = Counter("consent_ledger_appends_total", "Entries appended to the log", ["type"])
DECISIONS = Counter("consent_ledger_decisions_total", "Send decisions answered", ["outcome"])
WEBHOOK_AUTH_FAILURES = Counter(
    "consent_ledger_webhook_auth_failures_total",
    "Webhook requests refused for authentication (each may be a lost STOP)",
    ["reason"],
)
WEBHOOK_OUTCOMES = Counter(
    "consent_ledger_webhook_outcomes_total", "Webhook messages by outcome", ["outcome"]
)


def render(conn: sqlite3.Connection) -> bytes:
    """The exposition text: process-shared counters plus gauges read from the database now."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    return body + generate_latest(_database_gauges(conn))


def _database_gauges(conn: sqlite3.Connection) -> CollectorRegistry:
    registry = CollectorRegistry()
    scalar = lambda sql: int(conn.execute(sql).fetchone()[0])  # noqa: E731
    Gauge("consent_ledger_quarantine_size", "Webhook bodies in quarantine",
          registry=registry).set(scalar("SELECT count(*) FROM quarantine"))
    Gauge("consent_ledger_review_backlog", "Open review items",
          registry=registry).set(scalar("SELECT count(*) FROM review_items WHERE closed_by IS NULL"))
    head = scalar("SELECT coalesce(max(position), 0) FROM log")
    Gauge("consent_ledger_log_size", "Entries in the log", registry=registry).set(head)
    lag = Gauge("consent_ledger_projection_lag", "Log entries not yet applied by a projection",
                ["projection"], registry=registry)
    for name, position in conn.execute("SELECT name, position FROM projection_positions"):
        lag.labels(name).set(head - int(position))
    return registry
