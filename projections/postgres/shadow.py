"""Replaying the log into TEMP shadows of the projection tables and comparing them with the live
ones (``verify``, ``matches_rebuild``): nothing outside the session is ever written.

Guarantees: ``ShadowReplay`` creates, on one connection outside a transaction, a TEMP copy of
every projection table (``projections.postgres.tables.create_like``). PostgreSQL resolves an
unqualified name to a TEMP table first, so the projectors — handed this connection — write only
the shadows, and they may do so inside a ``READ ONLY`` transaction (writes to TEMP tables are
allowed there): the live tables and the log can never change. The live tables are always named
with their schema. ``replay_log`` feeds the projectors the log in batches, in position order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from psycopg import sql

from ledger.entries import Entry, decode_entry
from ledger.postgres.connection import Connection
from ledger.store import Committed, Projector, StoredEntry
from projections.postgres import tables
from projections.postgres.tables import PROJECTION_TABLES

BATCH = 20_000
"""Entries read and applied per statement batch of a replay."""


class ShadowReplay:
    """TEMP shadows of the projection tables of ``schema`` on ``conn``, and the projectors that
    fill them (see the module)."""

    def __init__(
        self, conn: Connection, schema: str, projectors: Sequence[Projector[Connection]]
    ) -> None:
        """Create the (empty) shadows; ``conn`` must not be inside a read-only transaction."""
        self.conn = conn
        self.schema = schema
        self.projectors = list(projectors)
        for table in PROJECTION_TABLES:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("pg_temp", table))
            )
            tables.create_like(conn, schema, table, "pg_temp")

    def apply(self, batch: Sequence[tuple[StoredEntry, Entry]]) -> None:
        """Apply consecutive entries, in position order, to every shadow."""
        feed(self.conn, self.projectors, [Committed(stored, entry) for stored, entry in batch])

    def finish(self) -> None:
        """Complete what a replay leaves for its end (``finish_replay``)."""
        finish(self.conn, self.projectors)

    def differences(self) -> dict[str, int]:
        """Per projection table whose shadow differs from the live table: the earliest log
        position among the differing rows (``projections.postgres.tables.first_difference``)."""
        found = {}
        for table in PROJECTION_TABLES:
            live = sql.Identifier(self.schema, table)
            shadow = sql.Identifier("pg_temp", table)
            first = tables.first_difference(self.conn, table, live, shadow, self.schema)
            if first is not None:
                found[table] = first
        return found


@runtime_checkable
class Replaying(Protocol):
    """A projector with a faster way to replay the log into its empty tables."""

    def replay(self, conn: Connection, items: Sequence[Committed]) -> None:
        """Apply ``items`` as part of a replay (some rows may wait for ``finish_replay``)."""
        ...

    def finish_replay(self, conn: Connection) -> None:
        """Write what ``replay`` left out: afterwards the tables equal those of ``apply``."""
        ...


def feed(
    conn: Connection, projectors: Sequence[Projector[Connection]], items: list[Committed]
) -> None:
    """Apply ``items`` to ``projectors`` as a replay does (``replay`` where a projector has it)."""
    if not items:
        return
    for projector in projectors:
        if isinstance(projector, Replaying):
            projector.replay(conn, items)
        else:
            projector.apply(conn, items)


def finish(conn: Connection, projectors: Sequence[Projector[Connection]]) -> None:
    """Call ``finish_replay`` of every projector that has one."""
    for projector in projectors:
        if isinstance(projector, Replaying):
            projector.finish_replay(conn)


def replay_log(
    conn: Connection,
    apply: Callable[[list[Committed]], None],
    after: int,
    upto: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Read the entries in (``after``, ``upto``] in position order, in batches, handing each
    batch to ``apply``; the number read."""
    count, last = 0, after
    while last < upto:
        with conn.cursor(binary=True) as cur:
            rows = cur.execute(
                "SELECT position, entry, leaf_hash FROM log WHERE position > %s "
                "AND position <= %s ORDER BY position LIMIT %s",
                (last, upto, BATCH),
            ).fetchall()
        if not rows:
            break
        apply([Committed(StoredEntry(p, d, h), decode_entry(d)) for p, d, h in rows])
        last, count = int(rows[-1][0]), count + len(rows)
        if progress:
            progress(count)
    return count
