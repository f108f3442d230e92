"""The PostgreSQL projections' own guarantees: a rebuild never stops decisions or appends and
ends equal to a fresh replay; one verifier key per log; verification reads only and names the
database with its password masked."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import sql

from ledger.checkpoint import Signer
from ledger.errors import Conflict, InvalidInput, MigrationError
from ledger.location import parse_location
from projections import engine as engines
from projections.intake import IntakeRequest, record
from projections.ledger import ConsentLedger, open_ledger
from projections.postgres import rebuild as pg_rebuild

from ..pg_util import drop_schema

TENANT = "acme"


def say(ledger: ConsentLedger, text: str, number: str) -> int:
    request = IntakeRequest(tenant=TENANT, subaccount="S_A", msisdn=number, method="api", text=text)
    return record(ledger, request).position or 0


@pytest.fixture
def ledger(pg_url: str) -> Iterator[ConsentLedger]:
    led = open_ledger(pg_url)
    led.configure_subaccount(TENANT, "S_A", actor="test")
    yield led
    led.close()


def test_a_rebuild_under_load_keeps_answering_and_ends_equal_to_a_replay(
    ledger: ConsentLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = [f"+65819{n:05d}" for n in range(300)]
    for number in stopped:
        say(ledger, "STOP", number)
    monkeypatch.setattr(pg_rebuild, "CATCH_UP_UNLOCKED", 5)  # catch up outside the lock too
    done = threading.Event()
    errors: list[BaseException] = []
    answers, appended = [0], [0]

    def decide() -> None:  # every STOP recorded before the rebuild suppresses, throughout
        try:
            while not done.is_set():
                many, _ = ledger.decide_many(TENANT, "S_A", stopped)
                assert not any(d.allowed for d in many.values())
                assert not ledger.decide(TENANT, "S_A", stopped[answers[0] % 300]).allowed
                answers[0] += 1
        except BaseException as exc:
            errors.append(exc)

    def append() -> None:  # every STOP acknowledged during the rebuild suppresses at once
        try:
            n = 0
            while not done.is_set():
                number = f"+65829{n:05d}"
                say(ledger, "STOP", number)
                assert not ledger.decide(TENANT, "S_A", number).allowed
                n += 1
                appended[0] = n
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=decide), threading.Thread(target=append)]
    for thread in threads:
        thread.start()
    try:
        replayed = ledger.maintenance.rebuild()
        assert ledger.maintenance.rebuild() >= replayed  # the swapped-in tables rebuild too
    finally:
        done.set()
        for thread in threads:
            thread.join(60)
    assert not errors
    assert answers[0] > 0
    assert appended[0] > 0
    assert ledger.maintenance.matches_rebuild()
    assert ledger.read_model.projection_positions()["consent"] == ledger.head()
    with psycopg.connect(ledger.location.url or "") as conn:
        names = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexname LIKE 'consent_facts%' ORDER BY 1"
        ).fetchall()
        left = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = current_schema() || '_rebuild'"
        ).fetchone()
    assert [n[0] for n in names] == ["consent_facts_lookup", "consent_facts_pkey"]
    assert left == (0,)


def test_a_changed_projection_no_longer_matches_a_rebuild(ledger: ConsentLedger) -> None:
    say(ledger, "STOP", "+6581960001")
    assert ledger.maintenance.matches_rebuild()
    with psycopg.connect(ledger.location.url or "", autocommit=True) as conn:
        conn.execute("UPDATE consent_current SET state = 'opted_in'")
    assert not ledger.maintenance.matches_rebuild()
    assert ledger.maintenance.rebuild() == ledger.head()
    assert ledger.maintenance.matches_rebuild()
    assert not ledger.decide(TENANT, "S_A", "+6581960001").allowed


def test_one_verifier_key_signs_a_log(ledger: ConsentLedger) -> None:
    first = Signer("node-a", Ed25519PrivateKey.generate())
    other = Signer("node-b", Ed25519PrivateKey.generate())
    record_, created = ledger.sign_checkpoint_now(first, "test")
    assert created
    say(ledger, "STOP", "+6581960001")
    with pytest.raises(Conflict, match="node-b"):
        ledger.sign_checkpoint_now(other, "test")
    assert ledger.latest_checkpoint() == record_  # nothing was signed
    later, created = ledger.sign_checkpoint_now(first, "test")
    assert created
    assert later.size == ledger.head()


def test_verify_reads_only_and_finds_a_changed_projection(ledger: ConsentLedger) -> None:
    say(ledger, "STOP", "+6581960001")
    where = ledger.location
    found = engines.verify_store(where, None)
    assert found.report.ok
    assert found.differences == {}
    assert found.conflicts == []
    with psycopg.connect(where.url or "", autocommit=True) as conn:
        conn.execute("UPDATE consent_facts SET state = 'opted_in'")
    found = engines.verify_store(where, None)
    assert found.report.ok
    assert found.differences == {"consent_facts": 2}


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    user, host = parts.netloc.split("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user}:s3cret@{host}"))


def test_verify_never_creates_a_ledger_and_masks_the_password(pg_url: str) -> None:
    url = _with_password(pg_url)
    with pytest.raises(InvalidInput, match="holds no consent ledger") as refused:
        engines.verify_store(parse_location(url), None)
    assert "s3cret" not in str(refused.value)
    assert "***" in str(refused.value)
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchone()
    assert tables == (0,)


def test_verify_refuses_a_schema_behind_this_build(pg_url: str) -> None:
    open_ledger(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE name LIKE '0002%'")
    with pytest.raises(MigrationError, match="0002"):
        engines.verify_store(parse_location(pg_url), None)


def test_signing_does_not_wait_for_the_log_lock(ledger: ConsentLedger) -> None:
    say(ledger, "STOP", "+6581960001")
    signer = Signer("node-a", Ed25519PrivateKey.generate())
    with ledger.store.write_transaction():  # type: ignore[attr-defined]  # holds the log lock
        done: list[object] = []
        thread = threading.Thread(
            target=lambda: done.append(ledger.sign_checkpoint_now(signer, "test"))
        )
        thread.start()
        thread.join(10)
        assert done, "signing waited for the log lock"
    assert ledger.latest_checkpoint() is not None


def test_a_role_that_may_not_create_schemas_rebuilds_in_one_made_for_it(pg_url: str) -> None:
    role = f"ledger_owner_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        schema = admin.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(*map(sql.Identifier, (schema, role)))
        )
    parts = urlsplit(pg_url)
    as_owner = urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.split('@', 1)[1]}"))
    try:
        ledger = open_ledger(as_owner)
        try:
            say(ledger, "STOP", "+6581960001")
            with pytest.raises(InvalidInput, match="CREATE SCHEMA"):
                ledger.maintenance.rebuild()
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                        sql.Identifier(f"{schema}_rebuild"), sql.Identifier(role)
                    )
                )
            assert ledger.maintenance.rebuild() == ledger.head()
            assert ledger.maintenance.matches_rebuild()
            assert not ledger.decide(TENANT, "S_A", "+6581960001").allowed
        finally:
            ledger.close()
    finally:
        drop_schema(schema)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
