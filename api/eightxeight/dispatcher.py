"""The reply dispatcher: sends what the outbox holds through 8x8, exactly once, from the log.

Guarantees (README "Connecting 8x8"):
- one dispatcher per deployment: it acts only while it holds the lease of job ``replies``
  (``ledger.runner``), taken over by another process when it dies;
- before calling 8x8 it appends ``reply.attempted`` under a key unique to (row, attempt): a
  second dispatcher, a restart, a rebuild or a copy of the store finds the key taken and never
  calls again; each call's outcome is one entry (``reply.sent`` / ``failed`` / ``deferred`` /
  ``uncertain``); an attempt left without an outcome when a dispatcher died is recorded
  ``uncertain`` by the next one (never re-sent);
- only what 8x8 provably did not take is attempted again (``projections.eightxeight.outcomes``),
  after its ``Retry-After`` or a back-off;
- nothing is sent when the reply's deadline (provider timestamp + 5 minutes) could pass before
  8x8 answers: it is recorded ``expired``; 8x8 is also told the deadline (``expiry``);
- just before sending, the log is asked again: a reply whose entry was retracted, or whose
  opt-out (opt-in) found the number already opted out (in) of that scope, is ``expired`` with
  the reason, never sent;
- a blacklist push waits until the reply of the same entry is settled (sent, failed, uncertain
  or expired), so the confirmation is not blocked by the blacklist it would precede;
- the 8x8 API key is sent in the ``Authorization`` header only: never logged or recorded.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import msgspec
import structlog

from api.eightxeight import credentials
from ledger.events import (
    ConsentGranted,
    ConsentRevoked,
    Event,
    HelpRequested,
    ReplyAttempted,
    ReplyDeferred,
    ReplyExpired,
    ReplyFailed,
    ReplySent,
    ReplyUncertain,
)
from ledger.store import Draft
from ledger.timefmt import format_time, parse_time
from projections.eightxeight import outcomes, replies
from projections.eightxeight.outbox import OPEN_STATES, Reply, attempt_key, outcome_key
from projections.eightxeight.outcomes import Outcome
from projections.ledger import ConsentLedger

JOB = "replies"
"""The one-runner job (``ledger.runner``) of sending replies and blacklist pushes."""

log = structlog.get_logger("consent_ledger.replies")


class Dispatcher:
    """Sends the outbox of ``ledger`` through 8x8 (see the module guarantees)."""

    def __init__(
        self,
        ledger: ConsentLedger,
        *,
        api_key: str,
        sms_url: Callable[[str], str] | None = None,
        contacts_url: Callable[[str], str] | None = None,
        timeout: float = 5.0,
        concurrency: int = 8,
        client: httpx.Client | None = None,
    ) -> None:
        self.ledger = ledger
        self._key = api_key
        self._sms_url = sms_url or (lambda r: credentials.base_url(credentials.SMS_HOSTS[r]))
        self._contacts_url = contacts_url or (
            lambda r: credentials.base_url(credentials.CONTACTS_HOSTS[r])
        )
        self.timeout = timeout
        self._http = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=timeout))
        self._pool = ThreadPoolExecutor(concurrency, "consent-ledger-replies")
        self._inflight: set[tuple[int, str]] = set()
        self._lock = threading.Lock()
        self._holding = False

    def close(self) -> None:
        """Wait for calls under way, then release the HTTP client."""
        self._pool.shutdown(wait=True)
        self._http.close()

    # -- one pass ---------------------------------------------------------------------------
    def run_once(self) -> int:
        """One pass: if this process is the dispatcher, start every due row (returns how many
        were started; they finish in the background, see ``wait``)."""
        if not self.ledger.store.lease(JOB).held():
            self._holding = False
            return 0
        if not self._holding:
            self._recover()
            self._holding = True
        now = self.ledger.clock()
        started = 0
        for row in self.ledger.read_model.open_replies(limit=500):
            key = (row.position, row.action)
            with self._lock:
                if key in self._inflight or not self._due(row, now):
                    continue
                self._inflight.add(key)
            self._pool.submit(self._guarded, row)
            started += 1
        return started

    def wait(self) -> None:
        """Block until every row started so far has finished."""
        while True:
            with self._lock:
                if not self._inflight:
                    return
            threading.Event().wait(0.01)

    def _due(self, row: Reply, now: datetime) -> bool:
        if row.state == "attempted":
            return False  # under way here, or left by a dead dispatcher (see _recover)
        if row.state == "deferred" and row.retry_at and parse_time(row.retry_at) > now:
            return False
        if row.action == "blacklist":
            waiting = self.ledger.read_model.replies_at(row.position)
            return not any(r.action == "reply" and r.state in OPEN_STATES for r in waiting)
        return True

    def _recover(self) -> None:
        """Attempts left without an outcome by a dispatcher that died: ``uncertain``."""
        for row in self.ledger.read_model.open_replies(limit=100_000):
            if row.state == "attempted" and (row.position, row.action) not in self._inflight:
                lost = ReplyUncertain(
                    position=row.position,
                    action=row.action,
                    reason="the dispatcher stopped during the call",
                )
                self._append(row, outcome_key(row, row.attempts), lost)

    def _guarded(self, row: Reply) -> None:
        try:
            self._handle(row)
        except Exception as exc:  # logged; the row stays as the log says (retried or recovered)
            log.error(
                "reply dispatch failed", position=row.position, action=row.action, error=repr(exc)
            )
        finally:
            with self._lock:
                self._inflight.discard((row.position, row.action))

    # -- one row ----------------------------------------------------------------------------
    def _handle(self, row: Reply) -> None:
        attempt = row.attempts + 1
        request = self._request(row, attempt)
        if isinstance(request, ReplyExpired):
            self._append(row, attempt_key(row, attempt), request)
            return
        started = self._append(
            row,
            attempt_key(row, attempt),
            ReplyAttempted(position=row.position, attempt=attempt, action=row.action),
        )
        if not started:
            return  # another dispatcher took this step
        outcome = self._call(*request, attempt=attempt)
        self._append(row, outcome_key(row, attempt), self._event(row, attempt, outcome))
        log.info(
            "reply dispatched",
            position=row.position,
            action=row.action,
            outcome=outcome.kind,
            reason=outcome.reason,
        )

    def _request(
        self, row: Reply, attempt: int
    ) -> tuple[str, dict[str, Any] | None] | ReplyExpired:
        """The URL and body to send, or why nothing is sent."""
        now = self.ledger.clock()
        if row.action == "blacklist":
            sync = replies.blacklist_settings(self.ledger.read_model, row.tenant)
            if sync is None or not sync.enabled or not sync.account:
                return _expired(row, "the blacklist sync was turned off")
            number = urllib.parse.quote(row.msisdn, safe="")
            base = self._contacts_url(sync.region)
            return f"{base}/api/v1/accounts/{sync.account}/contacts/blacklist/{number}", None
        assert row.deadline is not None
        assert row.kind is not None
        assert row.subaccount is not None
        if now + timedelta(seconds=self.timeout + 1) >= parse_time(row.deadline):
            return _expired(row, "the deadline passed (5 minutes after the request)")
        answered = self.ledger.store.read_positions([row.position])[0].entry
        event = answered.event
        assert isinstance(event, ConsentRevoked | ConsentGranted | HelpRequested)
        assert event.reply is not None
        why = self._not_due(row, answered.occurred_at, event)
        if why is not None:
            return _expired(row, why)
        settings_entry = self.ledger.store.read_positions([event.reply.settings])[0].entry
        settings = replies.settings_from(settings_entry)
        assert settings is not None
        text = settings.template(row.kind)
        if text is None:
            return _expired(row, f"the {row.kind} reply was turned off")
        body = {
            "destination": row.msisdn,
            "text": text,
            "clientMessageId": row.event_id,
            "encoding": "GSM7",
            "expiry": row.deadline,
        }
        source = event.destination or settings.sender
        if source:
            body["source"] = source
        base = self._sms_url(settings.region)
        return f"{base}/api/v1/subaccounts/{row.subaccount}/messages", body

    def _not_due(self, row: Reply, occurred: str, event: Event) -> str | None:
        """Why the log says this reply must not go now (retracted, a repeat), if it says so."""
        entries = [s.entry for s in self.ledger.store.read_number(row.tenant, row.msisdn)]
        if replies.retracted(entries, row.position):
            return "the entry it answers was retracted"
        scope = getattr(event, "scope", None)
        assert row.kind is not None
        assert row.subaccount is not None
        if replies.is_repeat(
            entries,
            row.tenant,
            row.subaccount,
            row.msisdn,
            row.kind,
            scope,
            occurred,
            row.position - 1,
        ):
            return "a repeat: the number was already in that state (no second confirmation)"
        return None

    def _call(self, url: str, body: Mapping[str, Any] | None, *, attempt: int) -> Outcome:
        headers = {"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"}
        content = msgspec.json.encode(body) if body is not None else b""
        try:
            answer = self._http.post(url, headers=headers, content=content)
        except httpx.ConnectError as exc:
            return outcomes.not_connected(str(exc) or type(exc).__name__, attempt)
        except httpx.HTTPError as exc:  # sent, maybe received: never again
            return outcomes.no_answer(str(exc) or type(exc).__name__)
        try:
            decoded = answer.json() if answer.content else None
        except ValueError:
            decoded = None
        return outcomes.from_answer(answer.status_code, answer.headers.get("retry-after"), decoded)

    def _event(self, row: Reply, attempt: int, outcome: Outcome) -> Event:
        position, action = row.position, row.action
        if outcome.kind == "sent":
            return ReplySent(position=position, action=action, umid=outcome.umid)
        if outcome.kind == "failed":
            code = outcome.code or ""
            return ReplyFailed(position=position, action=action, code=code, message=outcome.reason)
        if outcome.kind == "deferred":
            at = format_time(self.ledger.clock() + timedelta(seconds=outcome.retry_after or 1.0))
            return ReplyDeferred(
                position=position,
                action=action,
                attempt=attempt,
                reason=outcome.reason,
                retry_at=at,
            )
        return ReplyUncertain(position=position, action=action, reason=outcome.reason)

    def _append(self, row: Reply, key: str, event: Event) -> bool:
        """Append one outbox entry; whether it is new (``False``: its key was taken)."""
        draft = Draft(
            tenant=row.tenant,
            key=key,
            subaccount=row.subaccount,
            msisdn=row.msisdn,
            occurred_at=None,
            event=event,
        )
        return not self.ledger.append([draft])[0].duplicate


def _expired(row: Reply, reason: str) -> ReplyExpired:
    return ReplyExpired(position=row.position, reason=reason, action=row.action)


def run(dispatcher: Dispatcher, stop: threading.Event, tick: float = 0.2) -> None:
    """Run passes every ``tick`` seconds until ``stop`` is set; a failing pass is logged."""
    while not stop.is_set():
        try:
            dispatcher.run_once()
        except Exception as exc:
            log.error("reply pass failed", error=repr(exc))
        stop.wait(tick)
