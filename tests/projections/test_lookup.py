"""The number look-up behind the console's number page (``projections.lookup``)."""

from __future__ import annotations

import pytest

from ledger.errors import InvalidInput, InvalidNumber
from ledger.events import ConsentRevoked
from ledger.store import Draft
from projections.ledger import ConsentLedger
from projections.lookup import look_up, read_number


def _stop(tenant: str, key: str, subaccount: str, scope: str, occurred_at: str) -> Draft:
    event = ConsentRevoked(scope=scope, keyword="STOP", match="exact", policy=f"{subaccount}@1",
                           channel="sms", method="api", actor="data-subject")  # fmt: skip
    return Draft(tenant=tenant, key=key, subaccount=subaccount, msisdn="+6581968289",
                 occurred_at=occurred_at, event=event)  # fmt: skip


def test_national_digits_read_in_the_regions_of_the_subaccounts(ledger: ConsentLedger) -> None:
    with pytest.raises(InvalidNumber):  # no region anywhere: bare digits are not a number
        read_number(ledger, "t", "81968289", None)
    ledger.configure_subaccount("t", "A", actor="test", default_region="SG")
    ledger.configure_subaccount("t", "B", actor="test", default_region="SG")
    assert read_number(ledger, "t", "81968289", None) == "+6581968289"
    ledger.configure_subaccount("t", "C", actor="test", default_region="HK")
    with pytest.raises(InvalidInput, match="reads as different numbers"):
        read_number(ledger, "t", "91234567", None)
    assert read_number(ledger, "t", "91234567", "C") == "+85291234567"
    assert read_number(ledger, "t", "+6581968289", None) == "+6581968289"


def test_every_subaccount_answered_as_known_then(ledger: ConsentLedger) -> None:
    ledger.configure_subaccount("t", "A", actor="test")
    ledger.configure_subaccount("t", "B", actor="test")
    own = ledger.append([_stop("t", "s1", "A", "subaccount", "2026-03-01T00:00:00.000Z")])[0]
    ledger.append([_stop("t", "s2", "UNREGISTERED", "subaccount", "2026-03-02T00:00:00.000Z")])
    ledger.append([_stop("u", "s3", "A", "tenant", "2026-03-03T00:00:00.000Z")])  # not t's
    found = look_up(ledger, "t", "+6581968289")
    assert [r.subaccount for r in found.rows] == ["A", "B", "UNREGISTERED"]
    assert [r.decision.state for r in found.rows] == ["opted_out", "unknown", "opted_out"]
    assert not found.rows[2].known
    assert all(s.entry.tenant == "t" for s in found.entries)
    before = look_up(ledger, "t", "+6581968289", known_at=own.position - 1)
    assert before.entries == []
    assert [r.decision.state for r in before.rows] == ["unknown", "unknown"]
    earlier = look_up(ledger, "t", "+6581968289", at="2026-02-01T00:00:00.000Z")
    assert earlier.rows[0].decision.state == "unknown"
    assert earlier.rows[0].intervals == found.rows[0].intervals  # valid time: the same drawing
