"""Prometheus metrics, correct with several worker processes.

Counters and histograms go through prometheus_client's multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` was set before prometheus_client was imported (``consent-ledger
serve`` sets it before workers start); a scrape then sums every worker's values, including those
of workers that have exited, so totals never go back. Otherwise this process's own registry is
used;
gauges that describe the database (quarantine size, review backlog, projection lag) are read
from the database at scrape time, so every worker reports the same value.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Metric,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess
from prometheus_client import values as _values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ledger.timefmt import parse_time
from projections.eightxeight.outbox import OPEN_STATES, STATES
from projections.read_model import ReadModel, ReadView

_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def _pid() -> int:
    """This process's id, kept up to date across fork (``os.getpid`` is a system call)."""
    return _PID[0]


if _values.ValueClass is not _values.MutexValue:  # multiprocess mode, chosen at import
    # every counter increment asks for the process id, to notice a fork: ask a cached one
    _values.ValueClass = _values.MultiProcessValue(process_identifier=_pid)  # type: ignore[no-untyped-call]

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

_REQUEST_SERIES: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one HTTP request and record its latency (the labelled series are looked up once
    per route, method and status, not on every request)."""
    key = (route, method, status)
    series = _REQUEST_SERIES.get(key)
    if series is None:
        series = _REQUEST_SERIES[key] = (
            REQUESTS.labels(route, method, str(status)),
            LATENCY.labels(route),
        )
    series[0].inc()
    series[1].observe(seconds)


def render(read_model: ReadModel, now: datetime) -> bytes:
    """The exposition text: process-shared counters plus gauges read from the database at
    ``now`` (the ledger's clock: ages agree across nodes)."""
    registry = CollectorRegistry()
    if multiprocess_mode():
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    with read_model.snapshot() as view:  # the gauges agree with one another
        return body + generate_latest(_database_gauges(view, now))


def multiprocess_mode() -> bool:
    """Whether this process's counters live in the shared multiprocess directory (decided by
    prometheus_client when it was imported, not by the environment now)."""
    return _values.ValueClass is not _values.MutexValue and bool(
        os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    )


def _database_gauges(view: ReadView, now: datetime) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_DatabaseGauges(view, now))
    return registry


class _DatabaseGauges(Collector):
    """Gauges read from the database at scrape time. Built as metric families, not ``Gauge``
    objects: in multiprocess mode a ``Gauge`` would be written to the shared directory and
    reported again, per worker pid, with stale values."""

    def __init__(self, view: ReadView, now: datetime) -> None:
        self.view = view
        self.now = now

    def collect(self) -> Iterator[Metric]:
        """The current quarantine size, review backlog, log size and projection lags."""
        head = self.view.head()
        yield GaugeMetricFamily(
            "consent_ledger_quarantine_size",
            "Webhook bodies in quarantine",
            value=self.view.quarantine_size(),
        )
        yield from self._review()
        yield from self._outbox()
        yield GaugeMetricFamily("consent_ledger_log_size", "Entries in the log", value=head)
        lag = GaugeMetricFamily(
            "consent_ledger_projection_lag",
            "Log entries not yet applied by a projection",
            labels=["projection"],
        )
        for name, position in self.view.projection_positions().items():
            lag.add_metric([name], head - position)
        yield lag

    def _review(self) -> Iterator[Metric]:
        """The review queue: open items (all, and per kind) and the age of the oldest, so that
        unresolved tenant-wide opt-outs get a person's attention (docs/operating.md)."""
        backlog = {b.kind: b for b in self.view.review_backlog()}
        total = sum(b.open for b in backlog.values())
        yield GaugeMetricFamily("consent_ledger_review_backlog", "Open review items", value=total)
        per_kind = GaugeMetricFamily(
            "consent_ledger_review_open", "Open review items per kind", labels=["kind"]
        )
        for kind in ("flagged", "unresolved", "check", "reply"):
            per_kind.add_metric([kind], backlog[kind].open if kind in backlog else 0)
        yield per_kind
        oldest = min((b.oldest_recorded_at for b in backlog.values()), default=None)
        age = (self.now - parse_time(oldest)).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "consent_ledger_review_oldest_age_seconds",
            "Age of the oldest open review item (0 when the queue is empty)",
            value=max(age, 0.0),
        )

    def _outbox(self) -> Iterator[Metric]:
        """Replies and blacklist pushes (projections.eightxeight.outbox): pending ones, the age
        of the oldest pending, and every row per outcome."""
        found = self.view.outbox_counts()
        pending = GaugeMetricFamily(
            "consent_ledger_replies_pending",
            "Replies (and blacklist pushes) not yet sent, failed, uncertain or expired",
            labels=["action"],
        )
        per_state = GaugeMetricFamily(
            "consent_ledger_replies",
            "Replies (and blacklist pushes) per state: sent, failed, uncertain, expired …",
            labels=["action", "state"],
        )
        for action in ("reply", "blacklist"):
            counts = found.counts.get(action, {})
            pending.add_metric([action], sum(counts.get(s, 0) for s in OPEN_STATES))
            for state in STATES:
                per_state.add_metric([action, state], counts.get(state, 0))
        yield pending
        yield per_state
        oldest = found.oldest_open_recorded_at
        age = (self.now - parse_time(oldest)).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "consent_ledger_replies_oldest_pending_age_seconds",
            "Age of the oldest pending reply or blacklist push (0 when none)",
            value=max(age, 0.0),
        )
