"""Copies of the projection tables (a rebuild's next tables, a replay's TEMP shadows) and the
comparison of two copies.

Guarantees: ``create_like`` makes an empty table with the same name, columns (types, collations,
defaults, NOT NULL), CHECK constraints and primary-key / unique constraints (same constraint
names) as the live one; ``plain_indexes`` gives the live table's other indexes re-targeted at
the copy, under the same names (index names are per schema, so a copy in another schema keeps
them); ``first_difference`` names the earliest log position whose rows differ between two
copies, both ways, or ``None`` when they are equal.
"""

from __future__ import annotations

from psycopg import sql

from ledger.postgres.connection import Connection

PROJECTION_TABLES = (
    "consent_facts",
    "consent_current",
    "subaccount_versions",
    "tenant_versions",
    "review_items",
    "replies",
    "projection_positions",
)
"""Every projection table (a rebuild replaces them all; a snapshot locks them all)."""


def current_schema(conn: Connection) -> str:
    """The schema ``conn`` creates and finds the ledger's tables in."""
    row = conn.execute("SELECT current_schema()").fetchone()
    if row is None or row[0] is None:
        raise LookupError("the connection's search_path names no existing schema")
    return str(row[0])


def create_like(conn: Connection, schema: str, table: str, into: str) -> None:
    """Create ``into.table`` (``into``: another schema, or ``pg_temp`` for a TEMP table) as an
    empty copy of ``schema.table`` with its key constraints (see the module); its plain indexes
    are left for ``plain_indexes``, to be created once the copy is filled."""
    target = sql.Identifier(into, table)
    conn.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL EXCLUDING INDEXES)").format(
            target, sql.Identifier(schema, table)
        )
    )
    keys = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY conname",
        (_regclass(schema, table),),
    ).fetchall()
    for name, definition in keys:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                target, sql.Identifier(name), sql.SQL(definition)
            )
        )


def plain_indexes(conn: Connection, schema: str, table: str, into: str) -> list[sql.SQL]:
    """``CREATE INDEX`` statements of ``schema.table``'s indexes that back no constraint,
    re-targeted at the table of the same name in schema ``into`` (same index names)."""
    rows = conn.execute(
        "SELECT replace(pg_get_indexdef(i.indexrelid), "
        " ' ON ' || quote_ident(%s) || '.' || quote_ident(%s) || ' ',"
        " ' ON ' || quote_ident(%s) || '.' || quote_ident(%s) || ' ') "
        "FROM pg_index i WHERE i.indrelid = %s::regclass AND NOT EXISTS ("
        " SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
        "ORDER BY i.indexrelid",
        (schema, table, into, table, _regclass(schema, table)),
    ).fetchall()
    return [sql.SQL(str(row[0])) for row in rows]


def copy_grants(conn: Connection, schema: str, table: str, target: sql.Composable) -> None:
    """Grant on ``target`` what ``schema.table``'s owner granted on it to others."""
    rows = conn.execute(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
        "a.privilege_type FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS a "
        "LEFT JOIN pg_roles r ON r.oid = a.grantee "
        "WHERE c.oid = %s::regclass AND a.grantee <> c.relowner",
        (_regclass(schema, table),),
    ).fetchall()
    for grantee, privilege in rows:
        conn.execute(
            sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privilege), target, sql.SQL(grantee))
        )


def first_difference(
    conn: Connection, table: str, live: sql.Composable, other: sql.Composable, schema: str
) -> int | None:
    """The earliest log position among the rows that differ between ``live`` and ``other``
    (copies of projection table ``table`` of ``schema``), or ``None`` when they are equal.

    For ``projection_positions`` the position after the earliest differing one is named (the
    next entry is the bad one; "applied up to 0" equals "never applied"); for
    ``consent_current``, a summary of ``consent_facts``, the latest differing row is named (an
    entry whose fact differs shows up next to the fact it displaced or let through, and
    ``consent_facts`` names that entry itself).
    """
    columns = _columns(conn, schema, table)
    keys = _primary_key(conn, schema, table)
    if table == "projection_positions":
        pick = sql.SQL("min(position) + 1")
        a = sql.SQL("SELECT * FROM {} WHERE position > 0").format(live)
        b = sql.SQL("SELECT * FROM {} WHERE position > 0").format(other)
        differing = sql.SQL("({a} EXCEPT {b}) UNION ALL ({b} EXCEPT {a})").format(a=a, b=b)
    else:
        pick = sql.SQL(
            "max(position)"
            if table == "consent_current"
            else ("min(position)" if "position" in columns else "0")
        )
        differing = sql.SQL("{} UNION ALL {}").format(
            _unmatched(live, other, keys, columns), _unmatched(other, live, keys, columns)
        )
    row = conn.execute(
        sql.SQL("SELECT count(*), {} FROM ({}) AS d").format(pick, differing)
    ).fetchone()
    assert row is not None
    return None if row[0] == 0 else int(row[1] or 0)


def _unmatched(
    side: sql.Composable, other: sql.Composable, keys: list[str], columns: list[str]
) -> sql.Composable:
    """Rows of ``side`` that ``other`` lacks: no row with the same key, or one that differs in
    some column (NULLs compare equal)."""
    on = sql.SQL(" AND ").join(sql.SQL("o.{k} = s.{k}").format(k=sql.Identifier(k)) for k in keys)
    mine = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns)
    theirs = sql.SQL(", ").join(sql.SQL("o.{}").format(sql.Identifier(c)) for c in columns)
    return sql.SQL(
        "SELECT s.* FROM {side} s LEFT JOIN {other} o ON {on} "
        "WHERE o.{first} IS NULL OR ROW({theirs}) IS DISTINCT FROM ROW({mine})"
    ).format(side=side, other=other, on=on, first=sql.Identifier(keys[0]), theirs=theirs, mine=mine)


def _columns(conn: Connection, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        (_regclass(schema, table),),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _primary_key(conn: Connection, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
        (_regclass(schema, table),),
    ).fetchall()
    keys = [str(r[0]) for r in rows]
    if not keys:
        raise LookupError(f"projection table {table} has no primary key")
    return keys


def _regclass(schema: str, table: str) -> str:
    """``schema.table`` as text a ``::regclass`` cast reads (both parts quoted)."""
    return sql.Identifier(schema, table).as_string(None)


def lock(conn: Connection, schema: str, mode: str) -> None:
    """Lock every projection table of ``schema`` in ``mode`` (inside a transaction)."""
    names = sql.SQL(", ").join(sql.Identifier(schema, t) for t in PROJECTION_TABLES)
    conn.execute(sql.SQL("LOCK TABLE {} IN {} MODE").format(names, sql.SQL(mode)))
