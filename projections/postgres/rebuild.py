"""Rebuild on PostgreSQL without blocking decisions (the port's
``projections.read_model.Maintenance``).

How: the log is replayed into new, empty copies of the projection tables, made in a side schema
(``<schema>_rebuild``, made by the rebuild unless it exists) under the same table and index
names, outside the log lock and in batches, while the live tables go on answering and appends go
on. When the copies are nearly
level with the log, the log lock is taken (``PgLogStore.write_transaction``: no append of any
node comes in between), the last entries are applied to the copies, and in that same
transaction each live table is dropped and its copy moved into the ledger's schema. Readers keep
answering from the old tables until the swap commits; a snapshot
(``projections.postgres.read_model``) locks the projection tables before it reads, so it sees
either the old tables or the new ones, never a mix. The swap waits at most
``SWAP_LOCK_TIMEOUT`` for readers to let go of the old tables (a decision waits at most that
long), and is tried again, up to ``SWAP_ATTEMPTS`` times.

Guarantees: after ``rebuild`` each projection equals what live appends produced (the property
tests check it); a failed rebuild leaves the live tables as they were; two rebuilds of one
database never run at once (the second is refused with ``Conflict``); ``matches_rebuild``
compares the live tables with a replay into TEMP shadows in one read-only snapshot and changes
nothing. The role running a rebuild must own the projection tables, and either may create the
side schema (``CREATE`` on the database) or own one made for it; grants on the projection tables
are carried over to the new tables.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from contextlib import suppress

import psycopg
from psycopg import sql

from ledger.errors import Conflict, InvalidInput, StoreUnavailable
from ledger.postgres.connection import (
    Connection,
    connect,
    lock_key,
    unavailable_on_driver_error,
)
from ledger.postgres.store import PgLogStore, head_of
from ledger.store import Committed, Projector
from projections.postgres import tables
from projections.postgres.projectors import projectors
from projections.postgres.shadow import ShadowReplay, feed, finish, replay_log
from projections.postgres.tables import PROJECTION_TABLES

CATCH_UP_UNLOCKED = 2_000
"""Entries the copies may still lag behind the log when the log lock is taken for the swap
(more are first applied outside the lock)."""
SWAP_LOCK_TIMEOUT = "1s"
"""How long the swap waits for readers of the old tables (new readers wait behind it)."""
SWAP_ATTEMPTS = 5


class PgMaintenance:
    """The port's ``Maintenance`` on a ``PgLogStore``."""

    def __init__(self, store: PgLogStore) -> None:
        self._store = store

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """See ``rebuild``."""
        return rebuild(self._store, progress)

    def matches_rebuild(self) -> bool:
        """See ``matches_rebuild``."""
        return matches_rebuild(self._store)


def rebuild(store: PgLogStore, progress: Callable[[int], None] | None = None) -> int:
    """Replay every projection beside the live tables and swap them in (see the module);
    returns the entries replayed (the log's head at the swap)."""
    conn = connect(store.url)
    try:
        with unavailable_on_driver_error("the projections could not be rebuilt"):
            return _rebuild(store, conn, progress)
    finally:
        conn.close()


def _rebuild(store: PgLogStore, conn: Connection, progress: Callable[[int], None] | None) -> int:
    schema = tables.current_schema(conn)
    side = side_schema(schema)
    key = lock_key(conn, "rebuild")
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    if row is None or not row[0]:
        raise Conflict("a rebuild of these projections is already running; let it finish")
    made = False
    try:
        made = _prepare(conn, schema, side)
        conn.execute(
            sql.SQL("SET search_path = {}, {}").format(*map(sql.Identifier, (side, schema)))
        )
        conn.execute("SET synchronous_commit = off")  # the copies count only once swapped in
        replaying = projectors(strict=False)
        with conn.transaction():
            done = replay_log(
                conn, lambda items: feed(conn, replaying, items), 0, head_of(conn), progress
            )
            finish(conn, replaying)
            for table in PROJECTION_TABLES:
                for statement in tables.plain_indexes(conn, schema, table, side):
                    conn.execute(statement)
                tables.copy_grants(conn, schema, table, sql.Identifier(side, table))
        while (head := head_of(conn)) - done > CATCH_UP_UNLOCKED:
            with conn.transaction():
                done += _apply_log(conn, replaying, done, head, progress)
        return _swap(store, schema, side, replaying, done, progress)
    finally:
        with suppress(psycopg.Error):
            if not conn.closed and not conn.broken:
                conn.execute("RESET search_path")
                _clear(conn, side, made)
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def side_schema(schema: str) -> str:
    """The schema a rebuild of ``schema``'s projections builds its copies in."""
    name = f"{schema}_rebuild"
    if len(name.encode()) <= 63:  # PostgreSQL's identifier limit
        return name
    return "rebuild_" + hashlib.sha256(schema.encode()).hexdigest()[:40]


def _prepare(conn: Connection, schema: str, side: str) -> bool:
    """An empty copy of every projection table in the side schema, made now unless it exists
    (a role without ``CREATE`` on the database needs it made for it); whether it was made."""
    found = conn.execute("SELECT to_regnamespace(%s)", (sql.Identifier(side).as_string(),))
    row = found.fetchone()
    made = row is None or row[0] is None
    if made:
        try:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(side)))
        except psycopg.errors.InsufficientPrivilege as exc:
            raise InvalidInput(
                f"rebuild builds the new projection tables in schema {side}, and this role may "
                f"not create it: have it made once (CREATE SCHEMA {side} AUTHORIZATION "
                "<this role>), then rebuild again"
            ) from exc
    else:
        _clear(conn, side, made=False)
    for table in PROJECTION_TABLES:
        tables.create_like(conn, schema, table, side)
    return made


def _clear(conn: Connection, side: str, made: bool) -> None:
    """Drop what a rebuild left in the side schema (the schema too, if the rebuild made it)."""
    if made:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(side)))
        return
    for table in PROJECTION_TABLES:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(side, table)))


def _apply_log(
    conn: Connection,
    replaying: Sequence[Projector[Connection]],
    done: int,
    head: int,
    progress: Callable[[int], None] | None,
) -> int:
    """Apply the entries in (``done``, ``head``] to the copies as live appends do."""

    def apply(items: list[Committed]) -> None:
        for projector in replaying:
            projector.apply(conn, items)

    return replay_log(conn, apply, done, head, (lambda n: progress(done + n)) if progress else None)


def _swap(
    store: PgLogStore,
    schema: str,
    side: str,
    replaying: Sequence[Projector[Connection]],
    done: int,
    progress: Callable[[int], None] | None,
) -> int:
    """Under the log lock: the last entries, then the copies in place of the live tables."""
    live = sql.SQL(", ").join(sql.Identifier(schema, t) for t in PROJECTION_TABLES)
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            with store.write_transaction() as conn:
                conn.execute(
                    sql.SQL("SET LOCAL search_path = {}, {}").format(
                        sql.Identifier(side), sql.Identifier(schema)
                    )
                )
                head = head_of(conn)
                _apply_log(conn, replaying, done, head, progress)
                conn.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
                conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(live))
                for table in PROJECTION_TABLES:
                    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, table)))
                    conn.execute(
                        sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                            sql.Identifier(side, table), sql.Identifier(schema)
                        )
                    )
            return head
        except psycopg.errors.LockNotAvailable:
            time.sleep(0.05 * attempt)
    raise StoreUnavailable(
        "the projection tables stayed in use by long reads; nothing was changed, rebuild again"
    )


def matches_rebuild(store: PgLogStore) -> bool:
    """Whether the live projections equal a fresh replay of the log, compared in one read-only
    snapshot (nothing is changed; the replay goes to TEMP shadows on a connection of its own)."""
    conn = connect(store.url)
    try:
        with unavailable_on_driver_error("the projections could not be compared"):
            schema = tables.current_schema(conn)
            shadow = ShadowReplay(conn, schema, projectors(strict=False))
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                tables.lock(conn, schema, "ACCESS SHARE")
                replay_log(
                    conn, lambda items: feed(conn, shadow.projectors, items), 0, head_of(conn)
                )
                shadow.finish()
                return not shadow.differences()
    finally:
        conn.close()
