"""The PostgreSQL projectors: consent facts, configuration versions, the review queue and the
outbox (``projections.postgres.outbox``), kept in
step with the log inside the append transaction (``ledger.store.Projector`` on a psycopg
connection, ``ledger.postgres.connection.Connection``).

Guarantees (as on SQLite, ``projections.sqlite.projectors``): each projector records the last
position it applied (``projection_positions``) in the same transaction as its rows; its tables
are pure functions of the log (applied live or replayed, the rows are the same); the rules are
those of ``projections.fold`` (the property tests hold them equal). Live, the consent facts of a
group, the current facts they displace and the projector's position are written by one
statement; a replay copies facts in bulk (``COPY``) and derives ``consent_current`` once at the
end. Table names are unqualified: a replay into other tables of the same names (a rebuild's, a
verification's TEMP shadows) reuses these projectors as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ledger.errors import NotFound
from ledger.events import (
    ConsentGranted,
    ConsentRevoked,
    EntryRetracted,
    ReplyFailed,
    ReplySent,
    ReviewResolved,
    SubaccountConfigured,
    TenantConfigured,
)
from ledger.postgres.connection import Connection
from ledger.store import Committed, Projector
from projections.config import PolicyConflict, PolicyVersionClash
from projections.consent import TENANT_SCOPE
from projections.postgres.outbox import OutboxProjector
from projections.review import opens

PgProjector = Projector[Connection]


def projectors(
    *, strict: bool = True
) -> list[ConsentProjector | ConfigProjector | ReviewProjector | OutboxProjector]:
    """Every projection kept in step with the log, in the order they apply. ``strict``: refuse
    a new entry that breaks an invariant (live appends); a replay of what is stored reports
    instead (rebuild, verify)."""
    return [
        ConsentProjector(),
        ConfigProjector(strict=strict),
        ReviewProjector(),
        OutboxProjector(),
    ]


_SET_POSITION = (
    "INSERT INTO projection_positions (name, position) VALUES (%s, %s) "
    "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
)


def set_position(conn: Connection, name: str, position: int) -> None:
    """Record that projection ``name`` has applied the log up to ``position`` (same
    transaction)."""
    conn.execute(_SET_POSITION, (name, position))


# -- consent ---------------------------------------------------------------------------------
_FACT_COLUMNS = "position, tenant, scope, msisdn, state, occurred_at, event_id, type, keyword"
_CURRENT_COLUMNS = "position, tenant, scope, msisdn, state, occurred_at"
Fact = tuple[int, str, str, str, str, str, str, str, str | None]
"""A ``consent_facts`` row in ``_FACT_COLUMNS`` order (``retracted_by`` starts NULL)."""

# The facts of a group, the current facts they displace (a fact becomes the current one of its
# (tenant, msisdn, scope) unless that has a later one by occurred time, ties by position) and the
# projector's position: one statement, one round trip.
_LIVE = (
    "WITH facts AS ("  # noqa: S608
    f" INSERT INTO consent_facts ({_FACT_COLUMNS}) SELECT * FROM unnest("
    "  %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
    "  %s::text[], %s::text[])"
    "), applied AS ("
    " INSERT INTO projection_positions (name, position) VALUES ('consent', %s)"
    " ON CONFLICT (name) DO UPDATE SET position = excluded.position"
    ") "
    f"INSERT INTO consent_current ({_CURRENT_COLUMNS}) SELECT * FROM unnest("
    " %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
    "ON CONFLICT (tenant, msisdn, scope) DO UPDATE SET "
    "position = excluded.position, state = excluded.state, occurred_at = excluded.occurred_at "
    "WHERE (excluded.occurred_at, excluded.position) > "
    "(consent_current.occurred_at, consent_current.position)"
)

# Per (tenant, msisdn, scope), the fact not retracted with no later one (by occurred time, ties
# by position): the very rows ``apply`` keeps one group at a time.
_DERIVE_CURRENT = (
    f"INSERT INTO consent_current ({_CURRENT_COLUMNS}) "  # noqa: S608
    f"SELECT DISTINCT ON (tenant, msisdn, scope) {_CURRENT_COLUMNS} FROM consent_facts "
    "WHERE retracted_by IS NULL ORDER BY tenant, msisdn, scope, occurred_at DESC, position DESC"
)


class ConsentProjector:
    """Keeps ``consent_facts`` and ``consent_current`` in step with the log."""

    name = "consent"

    def apply(self, conn: Connection, items: Sequence[Committed]) -> None:
        """Insert a fact per consent entry and close facts that a retraction removes; keep
        ``consent_current`` and the position in step."""
        _apply(conn, items, live=True)

    def replay(self, conn: Connection, items: Sequence[Committed]) -> None:
        """What ``apply`` does to ``consent_facts``, during a replay into empty tables (facts
        copied in bulk); leaves ``consent_current`` to ``finish_replay``."""
        _apply(conn, items, live=False)

    def finish_replay(self, conn: Connection) -> None:
        """Fill the empty ``consent_current`` from ``consent_facts`` in one pass."""
        conn.execute(_DERIVE_CURRENT)

    def reset(self, conn: Connection) -> None:
        """Drop every fact."""
        conn.execute("DELETE FROM consent_facts")
        conn.execute("DELETE FROM consent_current")
        set_position(conn, self.name, 0)


def _fact(item: Committed) -> Fact | None:
    """The ``consent_facts`` row of a consent entry about a number (else ``None``)."""
    entry, event = item.entry, item.entry.event
    if not isinstance(event, ConsentRevoked | ConsentGranted) or not entry.msisdn:
        return None
    scope = TENANT_SCOPE if event.scope == "tenant" else entry.subaccount
    return (
        entry.position,
        entry.tenant,
        scope or TENANT_SCOPE,
        entry.msisdn,
        "opted_out" if isinstance(event, ConsentRevoked) else "opted_in",
        entry.occurred_at,
        entry.event_id,
        entry.type,
        event.keyword,
    )


def _apply(conn: Connection, items: Sequence[Committed], *, live: bool) -> None:
    """Facts of ``items`` in position order, a retraction applied where it falls among them;
    the projector's position last."""
    facts: list[Fact] = []
    last = items[-1].stored.position
    for item in items:
        fact = _fact(item)
        if fact is not None:
            facts.append(fact)
        elif isinstance(item.entry.event, EntryRetracted):
            if facts:
                _insert(conn, facts, live, facts[-1][0])
                facts = []
            _retract(conn, item.entry.event.position, item.entry.position, live)
    if facts and live:
        _insert(conn, facts, live, last)  # the position goes with the facts
        return
    if facts:
        _insert(conn, facts, live, last)
    set_position(conn, ConsentProjector.name, last)


def _insert(conn: Connection, facts: list[Fact], live: bool, position: int) -> None:
    """Insert ``facts``: live, with the current facts they displace and the projector's
    ``position``, in one statement; in a replay, copied in bulk."""
    if not live:
        with conn.cursor().copy(f"COPY consent_facts ({_FACT_COLUMNS}) FROM STDIN") as copy:
            for row in facts:
                copy.write_row(row)
        return
    latest: dict[tuple[str, str, str], Fact] = {}
    for row in facts:  # the latest fact per key of the group (an upsert touches a row once)
        key = (row[1], row[3], row[2])
        seen = latest.get(key)
        if seen is None or (row[5], row[0]) > (seen[5], seen[0]):
            latest[key] = row
    conn.execute(_LIVE, [*_columns(facts, 9), position, *_columns(list(latest.values()), 6)])


def _columns(rows: Sequence[Fact], width: int) -> list[list[object]]:
    """The first ``width`` columns of ``rows``, each as one array parameter (for ``unnest``)."""
    return [[row[i] for row in rows] for i in range(width)]


def _retract(conn: Connection, target: int, by: int, live: bool) -> None:
    """Mark the fact at ``target`` retracted and (live), if it was current, put the latest fact
    left for its (tenant, msisdn, scope) in its place (or none)."""
    row = conn.execute(
        "UPDATE consent_facts SET retracted_by = %s WHERE position = %s AND retracted_by IS NULL "
        "RETURNING tenant, msisdn, scope",
        (by, target),
    ).fetchone()
    if row is None or not live:
        return
    gone = conn.execute(
        "DELETE FROM consent_current WHERE tenant = %s AND msisdn = %s AND scope = %s "
        "AND position = %s",
        (*row, target),
    )
    if gone.rowcount:
        conn.execute(
            f"INSERT INTO consent_current ({_CURRENT_COLUMNS}) "  # noqa: S608
            f"SELECT {_CURRENT_COLUMNS} FROM consent_facts "
            "WHERE tenant = %s AND msisdn = %s AND scope = %s AND retracted_by IS NULL "
            "ORDER BY occurred_at DESC, position DESC LIMIT 1",
            row,
        )


# -- configuration ---------------------------------------------------------------------------
_KEYWORDS_JSON = msgspec.json.Encoder(order="deterministic")
"""Keyword changes as the log stores them (keys sorted), so a live row equals a replayed one."""


class ConfigProjector:
    """Keeps ``subaccount_versions`` and ``tenant_versions`` in step with the log.

    Invariant (docs/consent-rules.md §3): one (mode, keyword lists) per policy version of a
    subaccount. A strict projector refuses a new entry that breaks it (``PolicyVersionClash``,
    nothing written); a replay records what is stored, and ``policy_version_conflicts`` reports
    older breaks.
    """

    name = "config"

    def __init__(self, *, strict: bool = True) -> None:
        self.strict = strict

    def replay(self, conn: Connection, items: Sequence[Committed]) -> None:
        """Apply stored entries as they are (a rebuild never refuses what the log holds)."""
        self._apply(conn, items, strict=False)

    def finish_replay(self, conn: Connection) -> None:
        """Nothing is left for later in a replay."""

    def apply(self, conn: Connection, items: Sequence[Committed]) -> None:
        """Record each configuration entry as a new version (see the invariant)."""
        self._apply(conn, items, strict=self.strict)

    def _apply(self, conn: Connection, items: Sequence[Committed], *, strict: bool) -> None:
        for item in items:
            entry, event = item.entry, item.entry.event
            if isinstance(event, SubaccountConfigured):
                keywords = _KEYWORDS_JSON.encode(event.keywords).decode()
                if strict:
                    _check_policy_version(conn, entry.tenant, entry.subaccount, event, keywords)
                conn.execute(
                    "INSERT INTO subaccount_versions (position, tenant, subaccount, occurred_at, "
                    "default_region, mode, unknown, keywords, policy_version) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        entry.position,
                        entry.tenant,
                        entry.subaccount,
                        entry.occurred_at,
                        event.default_region,
                        event.mode,
                        event.unknown,
                        keywords,
                        event.policy_version,
                    ),
                )
            elif isinstance(event, TenantConfigured):
                conn.execute(
                    "INSERT INTO tenant_versions (position, tenant, occurred_at, revoke_all, "
                    "default_region) VALUES (%s, %s, %s, %s, %s)",
                    (
                        entry.position,
                        entry.tenant,
                        entry.occurred_at,
                        event.revoke_all,
                        event.default_region,
                    ),
                )
        set_position(conn, self.name, items[-1].stored.position)

    def reset(self, conn: Connection) -> None:
        """Drop every version."""
        conn.execute("DELETE FROM subaccount_versions")
        conn.execute("DELETE FROM tenant_versions")
        set_position(conn, self.name, 0)


def _check_policy_version(
    conn: Connection,
    tenant: str,
    subaccount: str | None,
    event: SubaccountConfigured,
    keywords: str,
) -> None:
    """Raise ``PolicyVersionClash`` when this policy version already names another policy."""
    row = conn.execute(
        "SELECT position FROM subaccount_versions WHERE tenant = %s AND subaccount = %s "
        "AND policy_version = %s AND (mode <> %s OR keywords <> %s) LIMIT 1",
        (tenant, subaccount, event.policy_version, event.mode, keywords),
    ).fetchone()
    if row is not None:
        raise PolicyVersionClash(
            f"policy version {event.policy_version} of subaccount {subaccount!r} already names "
            f"another policy (position {row[0]}); nothing was written"
        )


def policy_version_conflicts(conn: Connection) -> list[PolicyConflict]:
    """Every (tenant, subaccount, policy version) that names more than one policy."""
    rows = conn.execute(
        "SELECT tenant, subaccount, policy_version, array_agg(position ORDER BY position) FROM ("
        " SELECT tenant, subaccount, policy_version, position,"
        " count(*) OVER (PARTITION BY tenant, subaccount, policy_version, mode, keywords) AS n,"
        " count(*) OVER (PARTITION BY tenant, subaccount, policy_version) AS m"
        " FROM subaccount_versions) AS v WHERE n < m "
        "GROUP BY tenant, subaccount, policy_version ORDER BY tenant, subaccount, policy_version"
    ).fetchall()
    return [
        PolicyConflict(
            tenant=str(t), subaccount=str(s), policy_version=int(v), positions=[int(x) for x in p]
        )
        for t, s, v, p in rows
    ]


# -- review queue ----------------------------------------------------------------------------
_OPEN = (
    "INSERT INTO review_items (position, tenant, kind, subaccount, msisdn, keyword, occurred_at, "
    "recorded_at) SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::text[], %s::text[], %s::text[])"
)


class ReviewProjector:
    """Keeps ``review_items`` in step with the log."""

    name = "review"

    def apply(self, conn: Connection, items: Sequence[Committed]) -> None:
        """Open items for flags, unresolved and doubtful opt-outs; close them on resolution or
        retraction (items opened earlier in ``items`` are written first)."""
        opened: list[tuple[object, ...]] = []
        for item in items:
            entry, event = item.entry, item.entry.event
            opening = opens(event, entry.subaccount)
            if opening is not None:
                kind, subaccount, keyword = opening
                opened.append(
                    (
                        entry.position,
                        entry.tenant,
                        kind,
                        subaccount,
                        entry.msisdn,
                        keyword,
                        entry.occurred_at,
                        entry.recorded_at,
                    )
                )
                continue
            settles = isinstance(event, ReplySent | ReplyFailed) and event.settles is not None
            if not (settles or isinstance(event, ReviewResolved | EntryRetracted)):
                continue
            _open(conn, opened)
            opened = []
            if isinstance(event, ReviewResolved):
                _close(conn, entry.tenant, event.position, entry.position, event.action)
            elif isinstance(event, ReplySent | ReplyFailed):
                conn.execute(
                    "UPDATE review_items SET closed_by = %s, closed_how = 'settled' "
                    "WHERE position = %s AND closed_by IS NULL",
                    (entry.position, event.settles),
                )
            elif isinstance(event, EntryRetracted):
                conn.execute(
                    "UPDATE review_items SET closed_by = %s, closed_how = 'retracted' "
                    "WHERE position = %s AND closed_by IS NULL",
                    (entry.position, event.position),
                )
        _open(conn, opened)
        set_position(conn, self.name, items[-1].stored.position)

    def reset(self, conn: Connection) -> None:
        """Drop every item."""
        conn.execute("DELETE FROM review_items")
        set_position(conn, self.name, 0)


def _open(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    """Insert the review items ``rows``: one statement, however many (never a pipeline inside
    the log lock, see ``ledger.postgres.store``)."""
    if rows:
        conn.execute(_OPEN, [list(column) for column in zip(*rows, strict=True)])


def _close(conn: Connection, tenant: str, target: int, by: int, how: str) -> None:
    cur = conn.execute(
        "UPDATE review_items SET closed_by = %s, closed_how = %s "
        "WHERE position = %s AND tenant = %s AND closed_by IS NULL",
        (by, how, target, tenant),
    )
    if cur.rowcount == 0:
        raise NotFound(f"there is no open review item at position {target}")
