"""Subaccount configuration: policy versions stay one per change, even under concurrency."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from ledger.keywords import KeywordChanges
from projections.ledger import ConsentLedger
from projections.sqlite.read_model import SqliteView

TENANT, SUB = "acme", "ACME_MKT"


def versions(ledger: ConsentLedger) -> list[int]:
    entries = [s.entry for s in ledger.store.read_from(1, 100)]
    return [e.event.policy_version for e in entries if e.type == "subaccount.configured"]


def test_each_policy_change_makes_the_next_version(tmp_path: Path) -> None:
    ledger = ConsentLedger(tmp_path / "ledger.db")
    try:
        ledger.configure_subaccount(TENANT, SUB, actor="test")
        ledger.configure_subaccount(TENANT, SUB, actor="test", mode="strict")
        ledger.configure_subaccount(TENANT, SUB, actor="test", default_region="SG")  # same policy
        extra = KeywordChanges(add={"opt_out": ["UNSUB"]})
        ledger.configure_subaccount(TENANT, SUB, actor="test", keywords=extra)
        assert versions(ledger) == [1, 2, 2, 3]
        settings = ledger.settings(TENANT, SUB)
        assert settings is not None
        assert settings.policy.name == f"{SUB}@3"
    finally:
        ledger.close()


def test_an_unchanged_update_appends_nothing(tmp_path: Path) -> None:
    ledger = ConsentLedger(tmp_path / "ledger.db")
    try:
        first = ledger.update_subaccount(TENANT, SUB, actor="test", mode="strict")
        assert first is not None
        assert ledger.update_subaccount(TENANT, SUB, actor="test", mode="strict") is None
        assert ledger.update_subaccount(TENANT, SUB, actor="test") is None
        assert ledger.head() == first.position
    finally:
        ledger.close()


def test_concurrent_policy_changes_each_get_a_version_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers (two processes, say) change the policy at once; the first one, having read
    the current settings, is held up until the second has finished, if the second can."""
    path = tmp_path / "ledger.db"
    first, second = ConsentLedger(path), ConsentLedger(path)
    first.configure_subaccount(TENANT, SUB, actor="test")  # version 1
    second_done = threading.Event()
    read = SqliteView.settings

    def slow_read(self: SqliteView, *args: Any, **kwargs: Any) -> Any:
        found = read(self, *args, **kwargs)
        if threading.current_thread().name == "first":
            second_done.wait(1)  # the second writer may go ahead meanwhile, if it can
        return found

    monkeypatch.setattr(SqliteView, "settings", slow_read)

    def change_first() -> None:
        first.configure_subaccount(TENANT, SUB, actor="first", mode="strict")

    def change_second() -> None:
        second.configure_subaccount(TENANT, SUB, actor="second", mode="conservative")
        second_done.set()

    try:
        one = threading.Thread(target=change_first, name="first")
        one.start()
        two = threading.Thread(target=change_second, name="second")
        two.start()
        one.join(30)
        two.join(30)
        assert versions(first) == [1, 2, 3]  # never two different policies with one version
    finally:
        first.close()
        second.close()


def test_intake_is_decided_again_when_configuration_changes_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A STOP decided under one setting, while another writer turns revoke_all on before the
    STOP is appended, is decided again: it is recorded tenant-wide, as revoke_all then says."""
    from projections import intake

    path = tmp_path / "ledger.db"
    ledger, other = ConsentLedger(path), ConsentLedger(path)
    try:
        ledger.configure_subaccount(TENANT, SUB, actor="test")
        original = intake.prepare
        changed: list[bool] = []

        def prepare_then_change(led: ConsentLedger, req: Any) -> Any:
            prepared = original(led, req)
            if not changed:  # the first decision is overtaken by another writer
                changed.append(True)
                other.configure_tenant(TENANT, revoke_all=True, actor="test")
            return prepared

        monkeypatch.setattr(intake, "prepare", prepare_then_change)
        request = intake.IntakeRequest(
            tenant=TENANT, subaccount=SUB, msisdn="+6581968289", method="api", verb="opt_out"
        )
        result = intake.record(ledger, request)
        assert result.entry is not None
        assert result.entry.event.scope == "tenant"  # type: ignore[union-attr]
        assert result.entry.event.revoke_all is True  # type: ignore[union-attr]
        assert ledger.head() == 3  # configuration, revoke_all, the one STOP
    finally:
        ledger.close()
        other.close()


def test_a_webhook_batch_sees_a_subaccount_registered_earlier_in_its_group(
    tmp_path: Path,
) -> None:
    """Two STOPs for a new subaccount in one group commit: one registration, and both opt-outs
    under the registered policy (the second, overtaken by the first's registration, is decided
    again)."""
    from projections import intake

    ledger = ConsentLedger(tmp_path / "ledger.db")
    try:
        requests = [
            intake.IntakeRequest(
                tenant=TENANT,
                subaccount="NEW_SUB",
                msisdn=number,
                method="8x8-webhook",
                text="STOP",
                register_subaccount=True,
            )
            for number in ("+6581968289", "+6591234567")
        ]
        prepared = [intake.prepare(ledger, r) for r in requests]
        results = intake.record_each(ledger, prepared)  # type: ignore[arg-type]
        assert [r.outcome for r in results] == ["opted_out", "opted_out"]  # type: ignore[union-attr]
        types = [s.entry.type for s in ledger.store.read_from(1, 10)]
        assert types == ["subaccount.configured", "consent.revoked", "consent.revoked"]
        assert results[1].entry.event.policy == "NEW_SUB@1"  # type: ignore[union-attr]
    finally:
        ledger.close()


def clashing(version: int, mode: str) -> Any:
    """A configuration entry naming policy ``version`` with ``mode`` (no check of its own)."""
    from ledger.events import SubaccountConfigured
    from ledger.store import Draft

    event = SubaccountConfigured(
        default_region=None,
        mode=mode,  # type: ignore[arg-type]
        unknown="allow",
        keywords=KeywordChanges(),
        policy_version=version,
        actor="test",
        method="admin",
    )
    return Draft(tenant=TENANT, key=f"clash-{mode}", subaccount=SUB, msisdn=None,
                 occurred_at=None, event=event)  # fmt: skip


def test_a_policy_version_naming_another_policy_is_refused(tmp_path: Path) -> None:
    from projections.config import PolicyVersionClash

    ledger = ConsentLedger(tmp_path / "ledger.db")
    try:
        ledger.configure_subaccount(TENANT, SUB, actor="test")  # version 1, standard
        head = ledger.head()
        with pytest.raises(PolicyVersionClash, match="already names another policy"):
            ledger.append([clashing(1, "strict")])
        assert ledger.head() == head
        ledger.append([clashing(1, "standard")])  # same policy, same version: fine
    finally:
        ledger.close()


def test_an_older_clash_opens_rebuilds_and_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database written before the invariant was enforced still opens, rebuilds and verifies;
    rebuild and verify name the clash instead of refusing."""
    import json

    from api.cli import main
    from ledger.sqlite.store import SqliteLogStore
    from projections.sqlite.projectors import projectors

    path = tmp_path / "ledger.db"
    ConsentLedger(path).close()
    old = SqliteLogStore(path, projectors(strict=False))  # as an older build wrote it
    old.append([clashing(1, "standard")])
    old.append([clashing(1, "strict")])
    old.close()
    assert main(["rebuild", "--db", str(path)]) == 0
    rebuilt = json.loads(capsys.readouterr().out)
    [conflict] = rebuilt["policy_version_conflicts"]
    assert (conflict["subaccount"], conflict["policy_version"]) == (SUB, 1)
    assert conflict["positions"] == [1, 2]
    assert main(["verify", "--db", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["policy_version_conflicts"] == [conflict]


def _configure_many(path: str, words: list[str]) -> None:
    """One writer (a thread or a process) changing the policy once per word."""
    ledger = ConsentLedger(path)
    try:
        for word in words:
            extra = KeywordChanges(add={"opt_out": [word]})
            ledger.configure_subaccount(TENANT, SUB, actor="test", keywords=extra)
    finally:
        ledger.close()


def _assert_one_policy_per_version(path: Path, changes: int) -> None:
    ledger = ConsentLedger(path)
    try:
        assert sorted(versions(ledger)) == list(range(1, changes + 2))
        assert ledger.read_model.policy_version_conflicts() == []
    finally:
        ledger.close()


def test_concurrent_policy_changes_from_threads_each_name_one_version(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    first = ConsentLedger(path)
    first.configure_subaccount(TENANT, SUB, actor="test")
    first.close()
    words = [[f"T{t}W{w}" for w in range(5)] for t in range(4)]
    threads = [threading.Thread(target=_configure_many, args=(str(path), w)) for w in words]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _assert_one_policy_per_version(path, 20)


_WRITER = """
import sys
from ledger.keywords import KeywordChanges
from projections.ledger import ConsentLedger
ledger = ConsentLedger(sys.argv[1])
for word in sys.argv[2:]:
    extra = KeywordChanges(add={"opt_out": [word]})
    ledger.configure_subaccount("acme", "ACME_MKT", actor="test", keywords=extra)
ledger.close()
"""


def test_concurrent_policy_changes_from_two_processes_each_name_one_version(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    path = tmp_path / "ledger.db"
    first = ConsentLedger(path)
    first.configure_subaccount(TENANT, SUB, actor="test")
    first.close()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), *[f"P{p}W{w}" for w in range(8)]]
        )
        for p in range(2)
    ]
    assert [worker.wait(120) for worker in workers] == [0, 0]
    _assert_one_policy_per_version(path, 16)
