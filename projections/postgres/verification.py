"""Verifying a PostgreSQL database read-only: the whole log re-hashed and the projections
replayed into TEMP shadows, in one read-only ``REPEATABLE READ`` snapshot (docs/evidence.md §8).

Guarantees: the database is never created, migrated or written (the replay writes only TEMP
tables of its own session, which a read-only transaction allows; no lock on the log is taken,
so appends go on meanwhile); a database without the ledger's schema, or one whose schema is
behind this build, is refused with a ledger error naming it with its password masked (nothing
else escapes from the driver).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from psycopg import sql

from ledger.errors import InvalidInput, MigrationError
from ledger.location import mask_url
from ledger.postgres.connection import Connection, connect, unavailable_on_driver_error
from ledger.postgres.migrate import pending
from ledger.postgres.verify import verify_log
from ledger.verify import Progress
from projections.config import PolicyConflict
from projections.engine import Verification
from projections.postgres import tables
from projections.postgres.projectors import policy_version_conflicts, projectors
from projections.postgres.shadow import ShadowReplay


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector (a million short-lived rows make it run constantly)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _check_schema(conn: Connection, url: str) -> str:
    """The schema holding the ledger; refuse a database without one, or one whose schema is
    behind this build (``verify`` reads only; migrating is ``init``'s job)."""
    found = conn.execute("SELECT current_schema(), to_regclass('log')").fetchone()
    if found is None or found[0] is None or found[1] is None:
        raise InvalidInput(
            f"{mask_url(url)} holds no consent ledger (no log table in its schema); check the "
            "URL (and its search_path option)"
        )
    todo = pending(conn)
    if todo:
        raise MigrationError(
            f"{mask_url(url)} needs {len(todo)} schema migration(s) ({todo[0].name} first); "
            "run `consent-ledger init --db` on it, then verify"
        )
    return str(found[0])


def verify_database(
    url: str, verifier: str | None, progress: Progress | None = None
) -> Verification:
    """Verify the database at ``url`` in one read-only snapshot, without the log lock.

    Returns the report of ``verify_log``, the projection tables that differ from a replay of
    the same entries (table -> earliest differing position) and the policy versions naming two
    policies; the replay runs as the entries are checked, so each entry is read and decoded
    once.
    """
    conn = connect(url)
    try:
        with unavailable_on_driver_error(f"cannot verify {mask_url(url)}"):
            schema = _check_schema(conn, url)
            shadow = ShadowReplay(conn, schema, projectors(strict=False))
            with _no_gc(), conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                tables.lock(conn, schema, "ACCESS SHARE")
                report = verify_log(conn, verifier, progress, each_batch=shadow.apply)
                shadow.finish()
                differences = shadow.differences()
                conflicts = _live_conflicts(conn, schema)
    finally:
        conn.close()
    return Verification(report, differences, conflicts)


def _live_conflicts(conn: Connection, schema: str) -> list[PolicyConflict]:
    """The policy-version conflicts of the live tables (the TEMP shadows searched last)."""
    conn.execute(sql.SQL("SET LOCAL search_path = {}, pg_temp").format(sql.Identifier(schema)))
    return policy_version_conflicts(conn)
