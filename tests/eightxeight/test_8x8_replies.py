"""Replies through 8x8's SMS API: only live requests, exactly once, outcomes from the log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from api.eightxeight.dispatcher import Dispatcher
from api.eightxeight.fake import FakeEightByEight
from ledger.errors import InvalidInput
from ledger.events import ReplyAttempted
from ledger.store import Draft
from ledger.timefmt import format_time
from projections.eightxeight import receipts, replies
from projections.eightxeight.outbox import Reply, attempt_key
from projections.eightxeight.templates import validate
from projections.intake import IntakeRequest, IntakeResult, record
from projections.ledger import ConsentLedger
from projections.resolve import resolve
from tests.conftest import ENGINES

from .conftest import API_KEY

SUB = "ACME_MKT"
VIRTUAL = "+6590001111"
PERSON = "+6581968289"
OPT_OUT = "ACME: you will get no more messages from us. Reply START to rejoin."
HELP = "ACME help: call +65 6000 0000. Reply STOP to opt out."
OPT_IN = "ACME: you are subscribed again. Reply STOP to opt out."


@pytest.fixture
def led(ledger: Any) -> ConsentLedger:
    led: ConsentLedger = ledger
    led.configure_subaccount("default", SUB, actor="t")
    replies.configure_replies(led, "default", SUB, actor="t", opt_out=OPT_OUT, help=HELP,
                              opt_in=OPT_IN, numbers=[VIRTUAL])  # fmt: skip
    return led


@pytest.fixture
def dispatcher(led: ConsentLedger, fake: FakeEightByEight) -> Iterator[Dispatcher]:
    d = Dispatcher(led, api_key=API_KEY, sms_url=lambda _: fake.url,
                   contacts_url=lambda _: fake.url, timeout=1.0)  # fmt: skip
    yield d
    d.close()


_umids = iter(range(10**6))


def live(led: ConsentLedger, text: str = "STOP", *, ago: float = 10, method: Any = "8x8-webhook",
         umid: str | None = None, subaccount: str | None = SUB, msisdn: str = PERSON,
         destination: str | None = VIRTUAL, when: str | None = None) -> IntakeResult:  # fmt: skip
    when = when or format_time(led.clock() - timedelta(seconds=ago))
    return record(
        led,
        IntakeRequest(
            tenant="default",
            subaccount=subaccount,
            msisdn=msisdn,
            method=method,
            text=text,
            occurred_at=when,
            key=f"8x8:{umid or next(_umids)}",
            destination=destination,
        ),
    )


def rows(led: ConsentLedger) -> list[Reply]:
    out: list[Reply] = []
    for p in range(1, led.head() + 1):
        out.extend(led.read_model.replies_at(p))
    return out


def settle(d: Dispatcher, passes: int = 1) -> None:
    for _ in range(passes):
        d.run_once()
        d.wait()


@pytest.mark.parametrize("ledger", ENGINES, indirect=True)
def test_a_live_stop_gets_one_confirmation_from_the_number_texted(
    led: ConsentLedger, dispatcher: Dispatcher, fake: FakeEightByEight
) -> None:
    result = live(led)
    assert result.entry is not None
    assert result.entry.event.destination == VIRTUAL  # type: ignore[union-attr]
    assert result.entry.event.reply is not None  # type: ignore[union-attr]
    settle(dispatcher)
    settle(dispatcher)
    [sent] = fake.sent()
    assert sent.body["source"] == VIRTUAL
    assert sent.body["destination"] == PERSON
    assert sent.body["text"] == OPT_OUT
    assert sent.body["clientMessageId"] == result.entry.event_id
    assert sent.path == f"/api/v1/subaccounts/{SUB}/messages"
    [row] = rows(led)
    assert (row.state, row.umid) == ("sent", sent.umid)
    types = [e.entry.type for e in led.history("default", PERSON)]
    assert types == ["consent.revoked", "reply.attempted", "reply.sent"]
    led.maintenance.rebuild()
    assert rows(led) == [row]
    settle(dispatcher)
    assert len(fake.sent()) == 1  # a rebuild never sends again


def test_no_reply_for_a_repeat_an_admin_or_api_entry_a_replay_or_an_old_message(
    led: ConsentLedger, dispatcher: Dispatcher, fake: FakeEightByEight
) -> None:
    first = live(led, umid="u-1")
    assert first.entry is not None
    assert live(led, umid="u-1", when=first.entry.occurred_at).duplicate  # 8x8 replays it
    assert live(led, "stop please", umid="u-2").entry.event.reply is None  # type: ignore[union-attr]
    for method in ("admin", "api", "import"):
        other = live(led, msisdn="+6591234567", method=method)
        assert other.entry.event.reply is None  # type: ignore[union-attr]
    assert live(led, msisdn="+6591234568", ago=6 * 60).entry.event.reply is None  # type: ignore[union-attr]
    assert live(led, msisdn="+6591234569", method="automation-http").entry.event.reply is not None  # type: ignore[union-attr]
    settle(dispatcher)
    sent = {r.body["clientMessageId"] for r in fake.sent()}
    assert first.entry is not None
    assert first.entry.event_id in sent
    assert len(fake.sent()) == 2


def test_help_is_answered_each_time_and_an_opt_in_once(
    led: ConsentLedger, dispatcher: Dispatcher, fake: FakeEightByEight
) -> None:
    live(led, "HELP")
    live(led, "help")
    live(led, "START")
    live(led, "START")  # already opted in: no second confirmation
    settle(dispatcher)
    assert sorted(r.body["text"] for r in fake.sent()) == sorted([HELP, HELP, OPT_IN])


def test_replies_are_off_unless_configured(ledger: Any, fake: FakeEightByEight) -> None:
    led: ConsentLedger = ledger
    led.configure_subaccount("default", SUB, actor="t")
    assert live(led).entry.event.reply is None  # type: ignore[union-attr]


def test_an_unresolved_opt_out_is_answered_through_the_owner_of_the_number(
    led: ConsentLedger, dispatcher: Dispatcher, fake: FakeEightByEight
) -> None:
    result = live(led, subaccount=None)
    assert result.unresolved
    assert result.entry.event.reply.subaccount == SUB  # type: ignore[union-attr]
    assert (
        live(
            led, subaccount=None, msisdn="+6591234567", destination="+6599999999"
        ).entry.event.reply
        is None
    )  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("script", "state", "code"),
    [
        (["429", "ok"], "sent", None),
        (["503", "ok"], "sent", None),
        (["400"], "failed", "1002"),
        (["500"], "uncertain", None),
        (["timeout"], "uncertain", None),
    ],
)
def test_only_what_8x8_provably_did_not_take_is_retried(
    led: ConsentLedger, dispatcher: Dispatcher, fake: FakeEightByEight, clock: Any,
    script: list[str], state: str, code: str | None,
) -> None:  # fmt: skip
    fake.script = list(script)
    live(led)
    settle(dispatcher)
    clock.now += timedelta(seconds=2)  # past Retry-After
    settle(dispatcher, 2)
    [row] = rows(led)
    assert (row.state, row.code) == (state, code)
    took = [r for r in fake.records if r.accepted]
    assert len(took) == (1 if state in ("sent", "uncertain") and script[-1] != "500" else 0)


def test_refused_connections_are_retried(
    led: ConsentLedger, fake: FakeEightByEight, clock: Any
) -> None:
    d = Dispatcher(led, api_key=API_KEY, sms_url=lambda _: "http://127.0.0.1:9", timeout=1.0)
    live(led)
    settle(d)
    [row] = rows(led)
    assert row.state == "deferred"
    d.close()
    d = Dispatcher(led, api_key=API_KEY, sms_url=lambda _: fake.url, timeout=1.0)
    clock.now += timedelta(seconds=2)
    settle(d)
    assert [r.state for r in rows(led)] == ["sent"]
    d.close()


@pytest.mark.parametrize("ledger", ENGINES, indirect=True)
def test_an_uncertain_reply_is_reviewed_and_settled_by_its_receipt(
    led: ConsentLedger, dispatcher: Dispatcher, fake: FakeEightByEight
) -> None:
    fake.script = ["timeout"]
    live(led)
    settle(dispatcher)
    [row] = rows(led)
    assert row.state == "uncertain"
    [item] = led.review_queue("default")
    assert (item.kind, item.msisdn) == ("reply", PERSON)
    settle(dispatcher)
    assert len(fake.sent()) == 1  # never sent again
    import time

    time.sleep(0.2)
    [receipt] = fake.receipts
    payload = msgspec.json.decode(receipt)["payload"]
    said = receipts.settle(led, "default", client_message_id=payload["clientMessageId"],
                           umid=payload["umid"], state="delivered", error_code=None)  # fmt: skip
    assert "settled" in said
    [row] = rows(led)
    assert (row.state, row.umid) == ("sent", payload["umid"])
    assert led.review_queue("default") == []


def test_an_uncertain_reply_can_be_dismissed(
    led: ConsentLedger, dispatcher: Dispatcher, fake: FakeEightByEight
) -> None:
    fake.script = ["500"]
    live(led)
    settle(dispatcher)
    [item] = led.review_queue("default")
    with pytest.raises(InvalidInput):
        resolve(led, "default", item.position, action="opt_out", note="x", actor="t",
                subaccount=SUB)  # fmt: skip
    resolve(led, "default", item.position, action="dismiss", note="checked", actor="t")
    assert led.review_queue("default") == []


def test_nothing_is_sent_after_the_deadline(
    led: ConsentLedger, dispatcher: Dispatcher, fake: FakeEightByEight, clock: Any
) -> None:
    live(led, ago=10)
    clock.now += timedelta(minutes=5)
    settle(dispatcher)
    assert [r.state for r in rows(led)] == ["expired"]
    assert fake.sent() == []


def test_a_dispatcher_that_died_mid_call_leaves_an_uncertain_reply(
    led: ConsentLedger, fake: FakeEightByEight
) -> None:
    live(led)
    [row] = rows(led)
    attempted = ReplyAttempted(position=row.position, attempt=1)
    key = attempt_key(row, 1)
    led.append([Draft(tenant="default", key=key, subaccount=SUB, msisdn=PERSON,
                      occurred_at=None, event=attempted)])  # fmt: skip
    d = Dispatcher(led, api_key=API_KEY, sms_url=lambda _: fake.url, timeout=1.0)
    settle(d, 2)
    d.close()
    assert [r.state for r in rows(led)] == ["uncertain"]
    assert fake.sent() == []


@pytest.mark.parametrize("ledger", ENGINES, indirect=True)
def test_the_blacklist_push_follows_the_confirmation(
    led: ConsentLedger, dispatcher: Dispatcher, fake: FakeEightByEight
) -> None:
    replies.configure_blacklist(led, "default", enabled=True, account="acc-1", actor="t")
    live(led, "STOP ALL")
    live(led, "STOP", msisdn="+6591234567")  # subaccount-scoped: never blacklisted
    settle(dispatcher, 3)
    paths = [r.path for r in fake.records if r.accepted]
    assert paths == [
        f"/api/v1/subaccounts/{SUB}/messages",
        f"/api/v1/subaccounts/{SUB}/messages",
        "/api/v1/accounts/acc-1/contacts/blacklist/%2B6581968289",
    ]
    assert {(r.action, r.state) for r in rows(led)} == {("reply", "sent"), ("blacklist", "sent")}


@pytest.mark.parametrize(
    "text",
    ["Visit https://acme.example to rejoin", "Reply STOP. Big SALE today!", "x" * 161,
     "Unsubscribed ✅", "see acme.com"],
)  # fmt: skip
def test_templates_are_validated(text: str) -> None:
    with pytest.raises(InvalidInput):
        validate(text, "opt-out confirmation")


def test_a_valid_template_passes() -> None:
    assert validate(OPT_OUT, "x") == OPT_OUT
    assert validate("€" * 80, "x") == "€" * 80
