"""Evidence retention (docs/adopting.md): superseded entries lose their evidence once the period
has passed, deciding entries keep theirs, consent and verification are unchanged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from api.cli import main
from ledger.entries import Evidence
from ledger.errors import InvalidInput
from projections.intake import IntakeRequest, record
from projections.ledger import MIN_RETENTION_DAYS, ConsentLedger
from projections.retention import apply_retention
from tests.conftest import ENGINES, Clock

TENANT, MKT, NUMBER = "default", "ACME_MKT", "+6581968289"


def rec(led: ConsentLedger, verb: str, text: str, at: str) -> int:
    result = record(
        led,
        IntakeRequest(
            tenant=TENANT,
            subaccount=MKT,
            msisdn=NUMBER,
            verb=verb,  # type: ignore[arg-type]
            text=text,
            occurred_at=at,
            method="api",
            evidence=Evidence(text=text),
        ),
    )
    assert result.position is not None
    return result.position


def has_evidence(led: ConsentLedger, position: int) -> bool:
    _, content = led.store.evidence([position])[position]
    return content is not None


@pytest.mark.parametrize("ledger", ENGINES, indirect=True)
def test_retention_at_its_boundary(
    ledger: ConsentLedger, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    led = ledger
    led.configure_subaccount(TENANT, MKT, actor="t")
    stop = rec(led, "opt_out", "STOP", "2026-05-01T00:00:00Z")
    start = rec(led, "opt_in", "START", "2026-05-20T00:00:00Z")  # supersedes the STOP now
    superseded_at = clock.now
    again = rec(led, "opt_out", "STOP", "2026-05-25T00:00:00Z")  # decides the state now
    led.update_tenant(TENANT, actor="t", evidence_retention_days=MIN_RETENTION_DAYS)
    period = timedelta(days=MIN_RETENTION_DAYS)

    clock.now = superseded_at + period - timedelta(days=1)
    assert apply_retention(led, TENANT, actor="t").erased == 0
    assert has_evidence(led, stop)

    clock.now = superseded_at + period + timedelta(days=1)
    run = apply_retention(led, TENANT, actor="t")
    assert (run.erased, run.evidence_retention_days) == (2, MIN_RETENTION_DAYS)
    assert not has_evidence(led, stop)
    assert not has_evidence(led, start)  # superseded by the second STOP, long ago too
    assert has_evidence(led, again)  # still decides: kept, whatever its age
    assert led.decide(TENANT, MKT, NUMBER).state == "opted_out"
    assert apply_retention(led, TENANT, actor="t").erased == 0  # nothing twice
    capsys.readouterr()
    assert main(["verify", "--db", led.store.location]) == 0


def test_no_period_keeps_everything(ledger: ConsentLedger, clock: Clock) -> None:
    ledger.configure_subaccount(TENANT, MKT, actor="t")
    stop = rec(ledger, "opt_out", "STOP", "2026-05-01T00:00:00Z")
    rec(ledger, "opt_in", "START", "2026-05-02T00:00:00Z")
    clock.now += timedelta(days=100 * 365)
    assert apply_retention(ledger, TENANT, actor="t").erased == 0
    assert has_evidence(ledger, stop)


def test_a_short_period_needs_a_recorded_reason(ledger: ConsentLedger) -> None:
    with pytest.raises(InvalidInput, match="1461 days"):
        ledger.update_tenant(TENANT, actor="t", evidence_retention_days=365)
    done = ledger.update_tenant(
        TENANT, actor="t", evidence_retention_days=365, below_minimum_reason="counsel, T-77"
    )
    assert (done.evidence_retention_days, done.retention_reason) == (365, "counsel, T-77")
    entry = done.appended.stored.entry if done.appended else None
    assert entry is not None
    assert entry.event.retention_reason == "counsel, T-77"  # type: ignore[union-attr]
    # other settings keep the period; 0 keeps evidence for ever again
    ledger.update_tenant(TENANT, actor="t", revoke_all=True)
    assert ledger.evidence_retention(TENANT) == 365
    ledger.update_tenant(TENANT, actor="t", evidence_retention_days=0)
    assert ledger.evidence_retention(TENANT) is None
    assert ledger.revoke_all(TENANT)


def test_tenant_set_on_the_command_line(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["tenant", "set", "--db", str(db_path), "--evidence-retention-days", "30"]
    assert main(args) == 1
    assert "1461" in capsys.readouterr().err
    assert main([*args, "--below-minimum", "--reason", "T-1"]) == 0
    assert '"evidence_retention_days":30' in capsys.readouterr().out
    assert main(["retention", "apply", "--db", str(db_path)]) == 0
    assert '"erased":0' in capsys.readouterr().out


def test_the_service_runs_it_in_one_process(ledger: ConsentLedger, db_path: Path) -> None:
    from types import SimpleNamespace

    from api.retention_job import run_once

    ledger.update_tenant(TENANT, actor="t", evidence_retention_days=MIN_RETENTION_DAYS)
    assert run_once(SimpleNamespace(ledger=ledger)) is not None  # type: ignore[arg-type]
    other = ConsentLedger(db_path)
    try:
        assert run_once(SimpleNamespace(ledger=other)) is None  # type: ignore[arg-type]
    finally:
        other.close()
