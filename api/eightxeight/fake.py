"""A local fake of 8x8 for tests and for trying the round trip out (``consent-ledger 8x8 fake``).

It answers, with the shapes of 8x8's documentation (README "Connecting 8x8"):
- ``POST /api/v1/subaccounts/{sub}/messages`` (SMS send): 200 ``{umid, clientMessageId,
  destination, encoding, status: {code: "QUEUED", description}}``; every message it accepts gets
  a delivery receipt (``outbound_message_status_changed``) posted to ``dlr_url`` (or handed to
  ``deliver``) shortly after;
- ``POST|GET …/accounts/{acc}/definitions``, ``GET|PUT|DELETE …/definitions/{id}`` (Automation
  API): 201 with ``Location`` and the stored definition; updates add a version; 404 code 1300;
- ``POST …/accounts/{acc}/contacts/blacklist/{msisdn}`` (Contacts): 200;
- errors as ``{code, message, errorId, timestamp}``; 401 code 1200 without the expected key.

It records every request and what it did with it (``records``: accepted or not, the fault), and
injects faults into SMS sends and blacklist pushes: scripted (``script``, one per request, in
order) or random (``random`` probabilities, seeded): ``429`` (with ``Retry-After``), ``503``
(with ``Retry-After``), ``400`` (an 8x8 error body, code 1002), ``500``, ``timeout`` (accepted,
then the answer never arrives within the client's time-out), and refused connections
(``refuse(seconds)``: the listener is closed for that long; at random with ``refuse_rate`` per
second).
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import msgspec

QUEUED = "SMS is accepted and queued for processing"
FAULTS = ("ok", "429", "503", "400", "500", "timeout")


class Record(msgspec.Struct, kw_only=True):
    """One request the fake received, and what it did."""

    method: str
    path: str
    body: Any
    fault: str
    accepted: bool
    """The fake took it (a message it sends, a definition it stores, a number it blacklists)."""
    client_message_id: str | None = None
    umid: str | None = None
    at: float = 0.0
    """When it was received (seconds since the epoch)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "errorId": str(uuid.uuid4()), "timestamp": _now()}


class FakeEightByEight:
    """The fake's state and server (see the module)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        dlr_url: str | None = None,
        dlr_authorization: str | None = None,
        deliver: Callable[[bytes], None] | None = None,
        timeout_hold: float = 3.0,
        receipt_delay: float = 0.05,
        seed: int = 0,
    ) -> None:
        self.host = host
        self.api_key = api_key
        self.dlr_url = dlr_url
        self.dlr_authorization = dlr_authorization
        self.deliver = deliver
        self.timeout_hold = timeout_hold
        self.receipt_delay = receipt_delay
        self.records: list[Record] = []
        self.script: list[str] = []
        self.random: dict[str, float] = {}
        self.refuse_rate = 0.0
        self.refusals = 0
        self.receipts: list[bytes] = []
        self.definitions: dict[str, list[dict[str, Any]]] = {}
        self._rng = random.Random(seed)  # noqa: S311 (faults, not secrets)
        self._lock = threading.Lock()
        self._refusing = threading.Lock()
        first = self._bind(port)
        self._server: ThreadingHTTPServer | None = first
        self.port = int(first.server_address[1])
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- running --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL every fake API answers on."""
        return f"http://{self.host}:{self.port}"

    def _bind(self, port: int) -> ThreadingHTTPServer:
        fake = self

        class Handler(_Handler):
            owner = fake

        server = ThreadingHTTPServer((self.host, port), Handler)
        server.daemon_threads = True
        return server

    def start(self) -> FakeEightByEight:
        """Serve in background threads until ``stop``."""
        for target in (self._serve, self._refuser):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _serve(self) -> None:
        while not self._stopped.is_set():
            server = self._server
            if server is None:
                time.sleep(0.01)
                continue
            server.serve_forever(poll_interval=0.05)

    def _refuser(self) -> None:
        while not self._stopped.wait(0.1):
            if self.refuse_rate and self._rng.random() < self.refuse_rate * 0.1:
                self.refuse(0.3)

    def refuse(self, seconds: float) -> None:
        """Refuse every connection for ``seconds`` (the listener is closed meanwhile)."""
        with self._refusing:
            server, self._server = self._server, None
            if server is None:
                return
            self.refusals += 1
            server.shutdown()
            server.server_close()
            time.sleep(seconds)
            if not self._stopped.is_set():
                self._server = self._bind(self.port)

    def stop(self) -> None:
        """Stop serving."""
        self._stopped.set()
        with self._refusing:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    # -- faults ---------------------------------------------------------------------------
    def next_fault(self) -> str:
        """The fault for the next SMS send or blacklist push."""
        with self._lock:
            if self.script:
                return self.script.pop(0)
            draw = self._rng.random()
            for name, p in self.random.items():
                if draw < p:
                    return name
                draw -= p
            return "ok"

    def record(self, rec: Record) -> None:
        """Keep ``rec`` (thread-safe)."""
        rec.at = time.time()
        with self._lock:
            self.records.append(rec)

    def sent(self) -> list[Record]:
        """The SMS the fake accepted (sent), in order."""
        return [r for r in self.records if r.accepted and "/messages" in r.path]

    def send_receipt(self, body: dict[str, Any]) -> None:
        """Post one delivery receipt (after ``receipt_delay``), in a thread of its own."""
        data = json.dumps(body).encode()

        def later() -> None:
            time.sleep(self.receipt_delay)
            self.receipts.append(data)
            if self.deliver is not None:
                self.deliver(data)
            elif self.dlr_url:
                headers = {"Content-Type": "application/json"}
                if self.dlr_authorization:
                    headers["Authorization"] = self.dlr_authorization
                with contextlib.suppress(httpx.HTTPError):  # 8x8 would retry; kept in receipts
                    httpx.post(self.dlr_url, content=data, headers=headers, timeout=5)

        threading.Thread(target=later, daemon=True).start()


class _Handler(BaseHTTPRequestHandler):
    owner: FakeEightByEight
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _authorized(self) -> bool:
        key = self.owner.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._reply(401, _error(1200, "Unauthorized"))
        return False

    def do_GET(self) -> None:
        """Control: ``/_fake/records``; Automation: definitions."""
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:2] == ["_fake", "records"]:
            self._reply(200, [msgspec.to_builtins(r) for r in self.owner.records])
            return
        if not self._authorized():
            return
        if len(parts) == 5 and parts[4] == "definitions":
            latest = [versions[-1] for versions in self.owner.definitions.values()]
            self._reply(200, latest)
        elif len(parts) == 6 and parts[4] == "definitions":
            versions = self.owner.definitions.get(parts[5])
            if versions is None:
                self._reply(404, _error(1300, f"Definition {parts[5]} not found."))
            else:
                self._reply(200, list(reversed(versions)))
        else:
            self._reply(404, _error(1300, "Not found"))

    def do_PUT(self) -> None:
        """Automation: update a definition (a new version)."""
        parts = self.path.split("?")[0].strip("/").split("/")
        body = self._body()
        if not self._authorized():
            return
        versions = self.owner.definitions.get(parts[5]) if len(parts) == 6 else None
        self.owner.record(
            Record(
                method="PUT", path=self.path, body=body, fault="ok", accepted=versions is not None
            )
        )
        if versions is None:
            self._reply(404, _error(1300, f"Definition {parts[-1]} not found."))
            return
        stored = _stored(parts[3], parts[5], len(versions) + 1, body)
        versions.append(stored)
        self._reply(200, stored)

    def do_DELETE(self) -> None:
        """Automation: delete a definition."""
        parts = self.path.split("?")[0].strip("/").split("/")
        if self._authorized():
            self.owner.definitions.pop(parts[-1], None)
            self._reply(202, None)

    def do_POST(self) -> None:
        """SMS send, Automation create, Contacts blacklist, and the fake's controls."""
        parts = self.path.split("?")[0].strip("/").split("/")
        body = self._body()
        if parts[0] == "_fake":
            self._control(parts, body)
            return
        if not self._authorized():
            return
        if len(parts) == 5 and parts[2] == "subaccounts" and parts[4] == "messages":
            self._sms(parts[3], body)
        elif len(parts) == 5 and parts[4] == "definitions":
            if not isinstance(body, dict) or not body.get("definition", {}).get("name"):
                self._reply(400, _error(5001, "Workflow name is required."))
                return
            definition_id = str(uuid.uuid4())
            stored = _stored(parts[3], definition_id, 1, body)
            self.owner.definitions[definition_id] = [stored]
            self.owner.record(
                Record(method="POST", path=self.path, body=body, fault="ok", accepted=True)
            )
            location = f"/api/v1/accounts/{parts[3]}/definitions/{definition_id}"
            self._reply(201, stored, {"Location": location})
        elif len(parts) == 7 and parts[4:6] == ["contacts", "blacklist"]:
            self._faulted(body, lambda: (200, {"msisdn": parts[6]}), None)
        else:
            self._reply(404, _error(1300, "Not found"))

    def _control(self, parts: list[str], body: Any) -> None:
        owner = self.owner
        if parts[1:] == ["faults"] and isinstance(body, dict):
            owner.script = list(body.get("script", []))
            owner.random = dict(body.get("random", {}))
            owner.refuse_rate = float(body.get("refuse_rate", 0.0))
            self._reply(200, {"ok": True})
        elif parts[1:] == ["refuse"] and isinstance(body, dict):
            self._reply(200, {"ok": True})
            threading.Thread(target=owner.refuse, args=(float(body.get("seconds", 1)),)).start()
        else:
            self._reply(404, _error(1300, "Not found"))

    def _sms(self, subaccount: str, body: Any) -> None:
        if not isinstance(body, dict) or not body.get("destination") or not body.get("text"):
            self.owner.record(
                Record(method="POST", path=self.path, body=body, fault="invalid", accepted=False)
            )
            self._reply(400, _error(1000, "Invalid parameter: destination and text are required"))
            return
        umid = str(uuid.uuid4())

        def accepted() -> tuple[int, dict[str, Any]]:
            self.owner.send_receipt(_receipt(subaccount, umid, body))
            return 200, {
                "umid": umid,
                "clientMessageId": body.get("clientMessageId"),
                "destination": body["destination"],
                "encoding": "GSM7",
                "status": {"code": "QUEUED", "description": QUEUED},
            }

        self._faulted(body, accepted, umid)

    def _faulted(
        self, body: Any, accept: Callable[[], tuple[int, dict[str, Any]]], umid: str | None
    ) -> None:
        fault = self.owner.next_fault()
        cmid = body.get("clientMessageId") if isinstance(body, dict) else None
        took = fault in ("ok", "timeout")
        self.owner.record(
            Record(
                method="POST",
                path=self.path,
                body=body,
                fault=fault,
                accepted=took,
                client_message_id=cmid,
                umid=umid if took else None,
            )
        )
        if fault == "ok":
            self._reply(*accept())
        elif fault == "timeout":
            accept()
            time.sleep(self.owner.timeout_hold)  # the answer never arrives in time
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        elif fault in ("429", "503"):
            message = "Quota exceeded. Please try again in 1 second(s)."
            self._reply(int(fault), _error(int(fault), message), {"Retry-After": "1"})
        elif fault == "400":
            self._reply(400, _error(1002, "Invalid MSISDN"))
        else:
            self._reply(500, _error(2000, "Internal error"))


def _stored(account: str, definition_id: str, version: int, body: Any) -> dict[str, Any]:
    doc = dict(body) if isinstance(body, dict) else {}
    return {
        **doc,
        "accountId": account,
        "id": definition_id,
        "version": version,
        "createdAt": _now(),
    }


def _receipt(subaccount: str, umid: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "namespace": "SMS",
        "eventType": "outbound_message_status_changed",
        "description": "SMS outbound message status changed",
        "payload": {
            "umid": umid,
            "batchId": None,
            "clientMessageId": body.get("clientMessageId"),
            "clientBatchId": None,
            "subAccountId": subaccount,
            "source": body.get("source"),
            "destination": body.get("destination"),
            "smsCount": 1,
            "status": {
                "state": "delivered",
                "detail": "delivered_to_recipient",
                "timestamp": _now(),
                "errorCode": 0,
                "errorMessage": None,
            },
        },
    }
