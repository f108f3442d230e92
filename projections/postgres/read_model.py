"""The PostgreSQL read model and unit of work (``projections.read_model``): every query of the
projections, the audit trail, the review queue, operations and tamper evidence.

Beyond the port:
- A single decision is one statement (one round trip): the deciding fact and the subaccount's
  settings as known then and in force then, read together.
- Bulk decisions are one statement whatever the number of msisdns (arrays, ``= ANY`` and
  ``unnest``), pipelined with the settings query (one round trip): as known at the consent
  projection's position (the log head) they read ``consent_current`` and fall back to the full
  bitemporal query, for the numbers concerned, only where a current fact is dated after the
  valid time asked about; as known at an earlier position they use the full query.
- ``snapshot()`` is one ``REPEATABLE READ`` read-only transaction that first takes a shared lock
  on every projection table (one round trip with its head): a rebuild's swap
  (``projections.postgres.rebuild``) either commits before the snapshot is taken, or waits for
  the snapshot to end, so a snapshot never reads a table its own state cannot see.
- A driver error meaning the database cannot answer now is raised as ``StoreUnavailable``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

import msgspec
import psycopg
from psycopg.pq import TransactionStatus

from ledger import tree
from ledger.checkpoint_log import CheckpointRecord
from ledger.errors import InvalidInput
from ledger.keywords import KeywordChanges
from ledger.postgres.connection import Connection, unavailable_on_driver_error
from ledger.postgres.migrate import pending
from ledger.postgres.records import CheckpointTable
from ledger.postgres.store import (
    RARE_TYPES,
    TARGET_POSITION,
    PgLogStore,
    evidence_of,
    head_of,
    stored,
)
from ledger.postgres.tree import Nodes
from ledger.store import Appended, StoredEntry
from ledger.timefmt import format_time, parse_time
from projections.config import PolicyConflict, SubaccountSettings
from projections.decisions import BulkStates, Decision, Fact, State, UnknownRule, decision
from projections.decisions import unknown_rule as rule_of
from projections.eightxeight.outbox import OutboxCounts, Reply
from projections.postgres import outbox
from projections.postgres.projectors import policy_version_conflicts
from projections.postgres.tables import PROJECTION_TABLES
from projections.read_model import (
    ConsentDay,
    Decide,
    Evidence,
    FactPage,
    NumberFact,
    QuarantineSummary,
    ReadView,
    ReviewBacklog,
)
from projections.review import ReviewItem
from projections.timeline import Interval, TimelineFact, intervals_from

Borrow = Callable[[], AbstractContextManager[Connection]]
"""Lends a connection for one query: a pooled one, or the one a snapshot or write holds."""

_readable = unavailable_on_driver_error("the ledger cannot be read now")

_FACT = (
    "SELECT g.position, g.event_id, g.type, g.occurred_at, g.keyword, g.state, g.scope "
    "FROM consent_facts g WHERE g.tenant = %(tenant)s AND g.msisdn = {msisdn} "
    "AND g.scope IN (%(subaccount)s, '') AND g.position <= %(position)s "
    "AND (g.retracted_by IS NULL OR g.retracted_by > %(position)s) AND g.occurred_at <= %(at)s "
    "ORDER BY g.occurred_at DESC, g.position DESC LIMIT 1"
)
_ROW = "position, event_id, type, occurred_at, keyword, state, scope"
_SETTINGS_COLUMNS = (
    "tenant, subaccount, default_region, mode, unknown, keywords, policy_version, position, "
    "occurred_at"
)
_SETTINGS_NAMES = [c.strip() for c in _SETTINGS_COLUMNS.split(",")]
_WIDTH = len(_SETTINGS_NAMES)
_VERSION = (
    f"SELECT {_SETTINGS_COLUMNS} FROM subaccount_versions "  # noqa: S608
    "WHERE tenant = %(tenant)s AND subaccount = %(subaccount)s AND position <= %(position)s "
    "{at}ORDER BY occurred_at DESC, position DESC LIMIT 1"
)
# The subaccount's settings as known at the position (any valid time) and in force at the valid
# time: what the ``unknown`` rule needs (``projections.decisions.unknown_rule``).
_RULE = (
    "LEFT JOIN LATERAL ("
    + _VERSION.format(at="")
    + ") AS k ON true LEFT JOIN LATERAL ("
    + _VERSION.format(at="AND occurred_at <= %(at)s ")
    + ") AS i ON true"
)
_DECIDE = (
    "SELECT f.*, k.*, i.* FROM (SELECT) AS one "  # noqa: S608
    f"LEFT JOIN LATERAL ({_FACT.format(msisdn='%(msisdn)s')}) AS f ON true {_RULE}"
)
_UNKNOWN_RULE = f"SELECT k.*, i.* FROM (SELECT) AS one {_RULE}"  # noqa: S608
# The fact deciding each of many numbers, in one statement (``projections.decisions``' rule).
# ``consent_current`` holds the latest facts as known at the consent projection's position: when
# that is at or before the position asked about, a number's current facts decide it unless one
# is dated after the valid time asked about; such numbers, and every number otherwise, take the
# full bitemporal query. Each gate is an InitPlan: a branch not needed is never run. The numbers
# travel as one comma-separated text (an E.164 number holds no comma): a list of thousands costs
# far less to send that way. Only a short list runs as a prepared statement (``PREPARED``): a
# generic plan probes the index number by number, right for a few, while a long list is planned
# for its length (a hash join), at the cost of planning each call (about a millisecond).
PREPARED = 100
"""Bulk decisions for at most this many numbers run as a prepared statement (see above)."""
_EXACT = (
    "(SELECT coalesce((SELECT position <= %(position)s FROM projection_positions "
    "WHERE name = 'consent'), false))"
)
_DECIDING = (
    "WITH current AS ("  # noqa: S608
    " SELECT c.msisdn, c.occurred_at, c.position, c.state"
    " FROM unnest(string_to_array(%(numbers)s, ',')) AS n (msisdn) JOIN consent_current c"
    " ON c.tenant = %(tenant)s AND c.msisdn = n.msisdn AND c.scope IN (%(subaccount)s, '')"
    f" WHERE {_EXACT}"
    "), later AS ("
    " SELECT msisdn FROM current WHERE occurred_at > %(at)s"
    "), deciding AS (("
    " SELECT DISTINCT ON (msisdn) msisdn, position, state FROM current"
    " WHERE occurred_at <= %(at)s AND msisdn NOT IN (SELECT msisdn FROM later)"
    " ORDER BY msisdn, occurred_at DESC, position DESC"
    ") UNION ALL"
    " SELECT n.msisdn, f.position, f.state"
    " FROM unnest(string_to_array(%(numbers)s, ',')) AS n (msisdn)"
    f" CROSS JOIN LATERAL ({_FACT.format(msisdn='n.msisdn')}) AS f"
    f" WHERE NOT {_EXACT} OR n.msisdn IN (SELECT msisdn FROM later)"
    ") "
)
_STATES = f"{_DECIDING}SELECT msisdn, state FROM deciding"  # noqa: S608
_DECISIONS = (
    f"{_DECIDING}SELECT d.msisdn, f.position, f.event_id, f.type, f.occurred_at, f.keyword, "  # noqa: S608
    "f.state, f.scope FROM deciding d JOIN consent_facts f ON f.position = d.position"
)
# -- listings (exports, retention) ---------------------------------------------------------------
_KNOWN = (
    "g.tenant = %(tenant)s AND g.position <= %(position)s "
    "AND (g.retracted_by IS NULL OR g.retracted_by > %(position)s) AND g.occurred_at <= %(at)s"
)
# Every suppression listing reads a page of numbers (``numbers``) and answers the deciding fact
# of each number of it that is an opt-out, then one row more (``k`` 1): the page's last number
# and its size, so the caller knows where the next page starts.
_LISTED = (
    "SELECT 0 AS k, msisdn, scope, position FROM deciding WHERE state = 'opted_out' "
    "UNION ALL SELECT 1, max(msisdn), NULL, count(*) FROM numbers ORDER BY k, msisdn"
)
# For one subaccount, the rule of ``_DECIDING``: as known at the consent projection's position
# (gated inside the statement, so it holds even while appends go on), a page of the numbers
# ``consent_current`` has for the subaccount or tenant-wide, each decided by its current facts
# unless one is dated after the valid time asked about (then, and at an earlier position, by
# the full bitemporal query).
_SUPPRESSED = (
    "WITH numbers AS (("  # noqa: S608
    " SELECT DISTINCT msisdn FROM consent_current WHERE tenant = %(tenant)s"
    f" AND msisdn > %(after)s AND scope IN (%(subaccount)s, '') AND {_EXACT}"
    " ORDER BY msisdn LIMIT %(limit)s"
    ") UNION ALL ("
    " SELECT DISTINCT msisdn FROM consent_facts WHERE tenant = %(tenant)s"
    f" AND msisdn > %(after)s AND NOT {_EXACT} ORDER BY msisdn LIMIT %(limit)s"
    ")), current AS ("  # the page's rows: one range of the primary key, whatever the plan
    " SELECT msisdn, scope, occurred_at, position, state FROM consent_current"
    " WHERE tenant = %(tenant)s AND msisdn > %(after)s"
    " AND msisdn <= (SELECT max(msisdn) FROM numbers)"
    f" AND scope IN (%(subaccount)s, '') AND {_EXACT}"
    "), later AS ("
    " SELECT msisdn FROM current WHERE occurred_at > %(at)s"
    "), deciding AS (("
    " SELECT DISTINCT ON (msisdn) msisdn, scope, position, state FROM current"
    " WHERE msisdn NOT IN (SELECT msisdn FROM later)"
    " ORDER BY msisdn, occurred_at DESC, position DESC"
    ") UNION ALL"
    " SELECT n.msisdn, f.scope, f.position, f.state FROM numbers n"
    f" CROSS JOIN LATERAL ({_FACT.format(msisdn='n.msisdn')}) AS f"
    f" WHERE NOT {_EXACT} OR n.msisdn IN (SELECT msisdn FROM later)"
    f") {_LISTED}"
)
# For every subaccount at once: a tenant-wide opt-out deciding among tenant-wide facts, and no
# subaccount whose own latest fact is a later opt-in (that subaccount may send to the number).
_SUPPRESSED_EVERYWHERE = (
    "WITH numbers AS ("  # noqa: S608
    " SELECT DISTINCT msisdn FROM consent_facts WHERE tenant = %(tenant)s"
    " AND msisdn > %(after)s ORDER BY msisdn LIMIT %(limit)s"
    "), deciding AS ("
    " SELECT n.msisdn, f.scope, f.position, f.state FROM numbers n CROSS JOIN LATERAL ("
    "  SELECT g.scope, g.position, g.state, g.occurred_at FROM consent_facts g"
    f"  WHERE {_KNOWN} AND g.msisdn = n.msisdn AND g.scope = ''"
    "  ORDER BY g.occurred_at DESC, g.position DESC LIMIT 1) AS f"
    " WHERE f.state = 'opted_out' AND NOT EXISTS ("
    f"  SELECT 1 FROM consent_facts g WHERE {_KNOWN} AND g.msisdn = n.msisdn"
    "  AND g.scope <> '' AND g.state = 'opted_in'"
    "  AND (g.occurred_at, g.position) > (f.occurred_at, f.position)"
    "  AND NOT EXISTS (SELECT 1 FROM consent_facts k WHERE k.tenant = g.tenant"
    "   AND k.msisdn = g.msisdn AND k.scope = g.scope AND k.position <= %(position)s"
    "   AND (k.retracted_by IS NULL OR k.retracted_by > %(position)s)"
    "   AND k.occurred_at <= %(at)s"
    "   AND (k.occurred_at, k.position) > (g.occurred_at, g.position)))"
    f") {_LISTED}"
)
# Per (msisdn, scope) of a page, its latest fact as known and in force (NULL when none is).
_CONSENT_STATES = (
    "SELECT p.msisdn, p.scope, f.position FROM ("  # noqa: S608
    " SELECT DISTINCT msisdn, scope FROM consent_facts WHERE tenant = %(tenant)s"
    " AND (msisdn, scope) > (%(after_msisdn)s, %(after_scope)s)"
    " ORDER BY msisdn, scope LIMIT %(limit)s"
    ") AS p LEFT JOIN LATERAL ("
    f" SELECT g.position FROM consent_facts g WHERE {_KNOWN} AND g.msisdn = p.msisdn"
    " AND g.scope = p.scope ORDER BY g.occurred_at DESC, g.position DESC LIMIT 1"
    ") AS f ON true ORDER BY p.msisdn, p.scope"
)
# Consent facts with unerased evidence that a later, unretracted fact of the same number and
# scope superseded, or a retraction removed, by ``before`` (recorded time).
_SUPERSEDED = (
    "SELECT f.position FROM consent_facts f JOIN evidence e ON e.position = f.position "
    "WHERE f.position > %(after)s AND f.tenant = %(tenant)s AND e.salt IS NOT NULL AND ("
    " (f.retracted_by IS NOT NULL AND "
    "  (SELECT r.recorded_at FROM log r WHERE r.position = f.retracted_by) <= %(before)s)"
    " OR EXISTS (SELECT 1 FROM consent_facts g JOIN log l ON l.position = g.position "
    "  WHERE g.tenant = f.tenant AND g.msisdn = f.msisdn AND g.scope = f.scope "
    "  AND g.retracted_by IS NULL AND (g.occurred_at, g.position) > (f.occurred_at, f.position) "
    "  AND l.recorded_at <= %(before)s)"
    ") ORDER BY f.position LIMIT %(limit)s"
)
_HIGH_VOLUME = ("consent.revoked", "consent.granted", "help.requested", "review.flagged")
# The last position recorded at or before a time: a binary search over the dense positions
# (recorded times never decrease with position), one primary-key look-up per step, in one
# statement.
_KNOWN_AT = (
    "WITH RECURSIVE s (lo, hi) AS ("
    " SELECT 0::bigint, (SELECT coalesce(max(position), 0) FROM log)"
    " UNION ALL"
    " SELECT CASE WHEN l.recorded_at <= %(at)s THEN (s.lo + s.hi + 1) / 2 ELSE s.lo END,"
    "  CASE WHEN l.recorded_at <= %(at)s THEN s.hi ELSE (s.lo + s.hi + 1) / 2 - 1 END"
    " FROM s JOIN log l ON l.position = (s.lo + s.hi + 1) / 2 WHERE s.lo < s.hi"
    ") SELECT lo FROM s WHERE lo >= hi"
)
_REVIEW_COLUMNS = (
    "position, kind, subaccount, msisdn, keyword, occurred_at, recorded_at, closed_by, closed_how"
)
_REVIEW_NAMES = [c.strip() for c in _REVIEW_COLUMNS.split(",")]
_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
_LOCK = f"LOCK TABLE {', '.join(PROJECTION_TABLES)} IN ACCESS SHARE MODE"


class PgView:
    """The port's ``ReadView`` on the connections ``borrow`` lends: the one a snapshot or a
    write transaction holds (every query sees that state), or a pooled one per query (the
    ``PgReadModel``)."""

    def __init__(
        self,
        borrow: Borrow,
        clock: Callable[[], datetime],
        head: int | None = None,
        *,
        pipeline: bool = True,
    ) -> None:
        """``clock``: the store's (a snapshot passes the time it read with its head).
        ``pipeline``: two statements may share a round trip; never on the writer connection
        inside the log lock (a client frozen mid-pipeline keeps its session busy, and so the
        lock held: ``ledger.postgres.store``)."""
        self._borrow = borrow
        self._clock = clock
        self._head = head
        self._pipeline = pipeline

    def now(self) -> str:
        """The current time of the store's clock (a snapshot's: read with its head)."""
        return format_time(self._clock())

    @_readable
    def head(self) -> int:
        """The newest log position this view sees (0 for an empty log)."""
        if self._head is not None:
            return self._head
        with self._borrow() as conn:
            return head_of(conn)

    # -- configuration ----------------------------------------------------------------------
    @_readable
    def settings(
        self, tenant: str, subaccount: str, *, position: int | None = None, at: str | None = None
    ) -> SubaccountSettings | None:
        """Settings of ``subaccount`` as known at ``position`` and in force at valid time ``at``."""
        query = _VERSION.format(at="" if at is None else "AND occurred_at <= %(at)s ")
        if position is None:
            query = query.replace("AND position <= %(position)s ", "")
        params = {"tenant": tenant, "subaccount": subaccount, "position": position, "at": at}
        with self._borrow() as conn:
            row = conn.execute(query, params).fetchone()
        return None if row is None else _settings(row)

    @_readable
    def subaccounts(self, tenant: str) -> list[SubaccountSettings]:
        """The current settings of every known subaccount of ``tenant``, by id."""
        with self._borrow() as conn:
            rows = conn.execute(
                f"SELECT DISTINCT ON (subaccount) {_SETTINGS_COLUMNS} FROM subaccount_versions "  # noqa: S608
                "WHERE tenant = %s ORDER BY subaccount, position DESC",
                (tenant,),
            ).fetchall()
        return [_settings(r) for r in rows]

    @_readable
    def revoke_all(self, tenant: str) -> bool:
        """Whether ``tenant`` currently has ``revoke_all`` on (off unless configured)."""
        with self._borrow() as conn:
            row = conn.execute(
                "SELECT revoke_all FROM tenant_versions WHERE tenant = %s "
                "ORDER BY position DESC LIMIT 1",
                (tenant,),
            ).fetchone()
        return bool(row and row[0])

    @_readable
    def tenant_region(self, tenant: str) -> str | None:
        """The default region ``tenant`` currently has (none unless configured)."""
        with self._borrow() as conn:
            row = conn.execute(
                "SELECT default_region FROM tenant_versions WHERE tenant = %s "
                "ORDER BY position DESC LIMIT 1",
                (tenant,),
            ).fetchone()
        return None if row is None else cast(str | None, row[0])

    # -- decisions and timelines -------------------------------------------------------------
    @_readable
    def decide(self, tenant: str, subaccount: str, msisdn: str, at: str, known_at: int) -> Decision:
        """The decision for one number: one statement."""
        params = {
            "tenant": tenant,
            "subaccount": subaccount,
            "msisdn": msisdn,
            "at": at,
            "position": known_at,
        }
        with self._borrow() as conn:
            row = conn.execute(_DECIDE, params).fetchone()
        assert row is not None  # LEFT JOINs on one row
        fact = None if row[0] is None else cast(Fact, row[:7])
        return decision(fact, _rule(row[7:]), at, known_at)

    @_readable
    def decide_many(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], at: str, known_at: int
    ) -> dict[str, Decision]:
        """Decisions for many E.164 numbers at once; keyed by msisdn (see the module)."""
        distinct = list(dict.fromkeys(msisdns))
        with self._borrow() as conn:
            rows, unknown = _bulk(
                conn, _DECISIONS, tenant, subaccount, distinct, at, known_at, self._pipeline
            )
        found: dict[str, Fact] = {str(r[0]): cast(Fact, r[1:]) for r in rows}
        return {m: decision(found.get(m), unknown, at, known_at) for m in distinct}

    @_readable
    def states_many(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], at: str, known_at: int
    ) -> BulkStates:
        """The states ``decide_many`` would give (allowed and state, not who decided or why)."""
        distinct = list(dict.fromkeys(msisdns))
        with self._borrow() as conn:
            rows, unknown = _bulk(
                conn, _STATES, tenant, subaccount, distinct, at, known_at, self._pipeline
            )
        states: dict[str, State] = {str(m): state for m, state in rows}
        return BulkStates(states, unknown.allow, unknown.known)

    @_readable
    def intervals(self, tenant: str, subaccount: str, msisdn: str, known_at: int) -> list[Interval]:
        """The consent intervals of (subaccount, msisdn) as known at position ``known_at``."""
        with self._borrow() as conn:
            rows = conn.execute(
                "SELECT position, occurred_at, state, scope FROM consent_facts WHERE tenant = %s "
                "AND msisdn = %s AND scope IN (%s, '') AND position <= %s "
                "AND (retracted_by IS NULL OR retracted_by > %s) ORDER BY occurred_at, position",
                (tenant, msisdn, subaccount, known_at, known_at),
            ).fetchall()
        return intervals_from(cast(list[TimelineFact], rows))

    @_readable
    def suppressed(
        self,
        tenant: str,
        subaccount: str | None,
        at: str,
        known_at: int,
        after: tuple[str, str],
        limit: int,
    ) -> FactPage:
        """See the port: one statement per page (see ``_SUPPRESSED``)."""
        params = {
            "tenant": tenant,
            "subaccount": subaccount,
            "at": at,
            "position": known_at,
            "after": after[0],
            "limit": limit,
        }
        query = _SUPPRESSED if subaccount is not None else _SUPPRESSED_EVERYWHERE
        with self._borrow() as conn:
            rows = conn.execute(query, params).fetchall()
        *found, (_, last, _, examined) = rows
        facts = [NumberFact(str(m), str(s), int(p)) for _, m, s, p in found]
        cursor = (str(last), "") if examined == limit else None
        return FactPage(facts, cursor)

    @_readable
    def consent_states(
        self, tenant: str, at: str, known_at: int, after: tuple[str, str], limit: int
    ) -> FactPage:
        """See the port: a page of (msisdn, scope) pairs (index order), one look-up each."""
        params = {
            "tenant": tenant,
            "after_msisdn": after[0],
            "after_scope": after[1],
            "limit": limit,
            "at": at,
            "position": known_at,
        }
        with self._borrow() as conn:
            rows = conn.execute(_CONSENT_STATES, params).fetchall()
        facts = [NumberFact(str(m), str(s), int(p)) for m, s, p in rows if p is not None]
        cursor = (str(rows[-1][0]), str(rows[-1][1])) if len(rows) == limit else None
        return FactPage(facts, cursor)

    @_readable
    def superseded(self, tenant: str, before: str, after: int, limit: int) -> list[int]:
        """See the port: one pass over the facts in position order, a page at a time."""
        params = {"tenant": tenant, "before": before, "after": after, "limit": limit}
        with self._borrow() as conn:
            rows = conn.execute(_SUPERSEDED, params).fetchall()
        return [int(r[0]) for r in rows]

    @_readable
    def configured_tenants(self) -> list[str]:
        """Every tenant with a ``tenant.configured`` entry."""
        with self._borrow() as conn:
            rows = conn.execute(
                "SELECT DISTINCT tenant FROM tenant_versions ORDER BY tenant"
            ).fetchall()
        return [str(r[0]) for r in rows]

    @_readable
    def position_known_at(self, recorded_at: str) -> int:
        """The last log position recorded at or before ``recorded_at`` (0 if none): a binary
        search in one statement (``recorded_at`` never decreases with position, a guarantee
        ``verify`` checks, and positions are dense)."""
        with self._borrow() as conn:
            row = conn.execute(_KNOWN_AT, {"at": recorded_at}).fetchone()
        assert row is not None
        return int(row[0])

    # -- entries and evidence ----------------------------------------------------------------
    @_readable
    def entries_at(self, positions: Sequence[int]) -> list[StoredEntry]:
        """The entries at ``positions`` that exist, in position order."""
        with self._borrow() as conn:
            return stored(
                conn.execute(
                    "SELECT position, entry, leaf_hash FROM log "
                    "WHERE position = ANY(%s::bigint[]) ORDER BY position",
                    (list(positions),),
                ).fetchall()
            )

    @_readable
    def number_entries(self, tenant: str, msisdn: str) -> list[StoredEntry]:
        """Every entry of ``tenant`` about ``msisdn``, in position order."""
        with self._borrow() as conn:
            return stored(
                conn.execute(
                    "SELECT position, entry, leaf_hash FROM log WHERE tenant = %s "
                    "AND msisdn = %s ORDER BY position",
                    (tenant, msisdn),
                ).fetchall()
            )

    @_readable
    def targeting_entries(self, tenant: str, positions: Sequence[int]) -> list[StoredEntry]:
        """The retractions and review resolutions of ``tenant`` targeting ``positions``."""
        if not positions:
            return []
        with self._borrow() as conn:
            return stored(
                conn.execute(
                    # by type (rare entries, their partial index), never every entry of the tenant
                    "SELECT position, entry, leaf_hash FROM log "  # noqa: S608
                    "WHERE type IN ('entry.retracted', 'review.resolved') "
                    f"AND {RARE_TYPES} AND tenant = %s "
                    f"AND {TARGET_POSITION} = ANY(%s::bigint[]) ORDER BY position",
                    (tenant, list(positions)),
                ).fetchall()
            )

    @_readable
    def configuration_entries(self, tenant: str, subaccount: str) -> list[StoredEntry]:
        """The configuration entries of ``subaccount`` and of ``tenant``, in position order."""
        with self._borrow() as conn:
            return stored(
                conn.execute(
                    # two searches by type (rare entries), never a pass over the tenant's entries
                    "SELECT position, entry, leaf_hash FROM log "  # noqa: S608
                    f"WHERE type = 'subaccount.configured' AND {RARE_TYPES} "
                    "AND tenant = %s AND subaccount = %s UNION ALL "
                    "SELECT position, entry, leaf_hash FROM log "
                    f"WHERE type = 'tenant.configured' AND {RARE_TYPES} AND tenant = %s "
                    "ORDER BY position",
                    (tenant, subaccount, tenant),
                ).fetchall()
            )

    @_readable
    def entries_of_types(
        self, tenant: str, types: Sequence[str], *, subaccount: str | None = None
    ) -> list[StoredEntry]:
        """Every entry of ``tenant`` of one of ``types`` (rare types: their partial index), in
        position order."""
        common = set(types) & set(_HIGH_VOLUME)
        if common:
            raise ValueError(f"not a rare entry type: {sorted(common)}")
        where = "" if subaccount is None else " AND subaccount = %s"
        params = [list(types), tenant] + ([] if subaccount is None else [subaccount])
        with self._borrow() as conn:
            return stored(
                conn.execute(
                    "SELECT position, entry, leaf_hash FROM log "  # noqa: S608
                    f"WHERE type = ANY(%s::text[]) AND {RARE_TYPES} AND tenant = %s{where} "
                    "ORDER BY position",
                    params,
                ).fetchall()
            )

    # -- the outbox --------------------------------------------------------------------------
    @_readable
    def open_replies(self, *, after: int = 0, limit: int = 100) -> list[Reply]:
        """Open outbox rows after ``after``, oldest first."""
        with self._borrow() as conn:
            return outbox.open_replies(conn, after=after, limit=limit)

    @_readable
    def replies_at(self, position: int) -> list[Reply]:
        """The outbox rows of the entry at ``position``."""
        with self._borrow() as conn:
            return outbox.replies_at(conn, position)

    @_readable
    def reply_for_message(self, tenant: str, event_id: str) -> Reply | None:
        """The reply row whose ``clientMessageId`` is ``event_id``."""
        with self._borrow() as conn:
            return outbox.reply_for_message(conn, tenant, event_id)

    @_readable
    def outbox_counts(self) -> OutboxCounts:
        """Outbox rows per action and state, and the oldest open one's recorded time."""
        with self._borrow() as conn:
            return outbox.outbox_counts(conn)

    @_readable
    def evidence(self, positions: Sequence[int]) -> Evidence:
        """The evidence rows of ``positions`` (see ``Evidence``)."""
        if not positions:
            return {}
        with self._borrow() as conn:
            return evidence_of(conn, positions)

    # -- review queue ------------------------------------------------------------------------
    @_readable
    def review_item(self, tenant: str, position: int) -> ReviewItem | None:
        """The review item at ``position`` of ``tenant``, open or closed."""
        with self._borrow() as conn:
            row = conn.execute(
                f"SELECT {_REVIEW_COLUMNS} FROM review_items "  # noqa: S608
                "WHERE tenant = %s AND position = %s",
                (tenant, position),
            ).fetchone()
        return None if row is None else _review_item(row)

    @_readable
    def open_review_items(
        self,
        tenant: str,
        *,
        after: int = 0,
        limit: int = 1000,
        kind: str | None = None,
        subaccount: str | None = None,
        recorded_before: str | None = None,
    ) -> list[ReviewItem]:
        """Up to ``limit`` open items of ``tenant`` with position > ``after``, oldest first
        (filtered as the port says)."""
        with self._borrow() as conn:
            rows = conn.execute(
                f"SELECT {_REVIEW_COLUMNS} FROM review_items WHERE tenant = %(tenant)s "  # noqa: S608
                "AND closed_by IS NULL AND position > %(after)s "
                "AND (%(kind)s::text IS NULL OR kind = %(kind)s) "
                "AND (%(subaccount)s::text IS NULL OR subaccount = %(subaccount)s) "
                "AND (%(before)s::text IS NULL OR recorded_at < %(before)s) "
                "ORDER BY position LIMIT %(limit)s",
                {"tenant": tenant, "after": after, "kind": kind, "subaccount": subaccount,
                 "before": recorded_before, "limit": limit},
            ).fetchall()  # fmt: skip
        return [_review_item(r) for r in rows]

    @_readable
    def review_backlog(self, tenant: str | None = None) -> list[ReviewBacklog]:
        """Open review items per kind, across all tenants or of ``tenant`` alone."""
        with self._borrow() as conn:
            rows = conn.execute(
                "SELECT kind, count(*), min(recorded_at) FROM review_items "
                "WHERE closed_by IS NULL AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s) "
                "GROUP BY kind ORDER BY kind",
                {"tenant": tenant},
            ).fetchall()
        return [ReviewBacklog(str(kind), int(n), str(oldest)) for kind, n, oldest in rows]

    # -- operations --------------------------------------------------------------------------
    @_readable
    def projection_positions(self) -> dict[str, int]:
        """The last log position each projection has applied, by projection name."""
        with self._borrow() as conn:
            rows = conn.execute(
                "SELECT name, position FROM projection_positions ORDER BY name"
            ).fetchall()
        return {str(name): int(position) for name, position in rows}

    @_readable
    def quarantine_size(self) -> int:
        """Webhook bodies in quarantine, across all tenants."""
        with self._borrow() as conn:
            row = conn.execute("SELECT count(*) FROM quarantine").fetchone()
        assert row is not None
        return int(row[0])

    @_readable
    def quarantine_summary(self, tenant: str) -> QuarantineSummary:
        """How many bodies of ``tenant`` are in quarantine, and the oldest one's receive time."""
        with self._borrow() as conn:
            row = conn.execute(
                "SELECT count(*), min(received_at) FROM quarantine WHERE tenant = %s", (tenant,)
            ).fetchone()
        assert row is not None
        return QuarantineSummary(int(row[0]), None if row[1] is None else str(row[1]))

    @_readable
    def consent_per_day(self, tenant: str, since: str) -> list[ConsentDay]:
        """Opt-outs and opt-ins of ``tenant`` per UTC day recorded at or after ``since``: the
        first position recorded since then found by binary search (``position_known_at``), the
        consent facts from there read by position."""
        earlier = format_time(parse_time(since) - timedelta(milliseconds=1))
        first = self.position_known_at(earlier) + 1
        with self._borrow() as conn:
            rows = conn.execute(
                "SELECT left(l.recorded_at, 10) AS day, "
                "count(*) FILTER (WHERE f.state = 'opted_out'), "
                "count(*) FILTER (WHERE f.state = 'opted_in') "
                "FROM consent_facts f JOIN log l ON l.position = f.position "
                "WHERE f.position >= %s AND f.tenant = %s GROUP BY day ORDER BY day",
                (first, tenant),
            ).fetchall()
        return [ConsentDay(str(day), int(out), int(in_)) for day, out, in_ in rows]

    @_readable
    def policy_version_conflicts(self) -> list[PolicyConflict]:
        """See the port."""
        with self._borrow() as conn:
            return policy_version_conflicts(conn)

    @_readable
    def pending_migrations(self) -> list[str]:
        """Names of the schema migrations not yet applied."""
        with self._borrow() as conn:
            return [m.name for m in pending(conn)]

    # -- tamper evidence ---------------------------------------------------------------------
    @_readable
    def latest_checkpoint(self) -> CheckpointRecord | None:
        """The newest signed checkpoint."""
        with self._borrow() as conn:
            return CheckpointTable(conn).latest()

    @_readable
    def checkpoints_since(self, size: int, limit: int) -> list[CheckpointRecord]:
        """Up to ``limit`` checkpoints of size >= ``size``, oldest first."""
        with self._borrow() as conn:
            return CheckpointTable(conn).since(size, limit)

    @_readable
    def tree_size(self) -> int:
        """The number of leaves in the Merkle tree."""
        with self._borrow() as conn:
            return Nodes(conn).size()

    @_readable
    def inclusion_proof(self, position: int, size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of ``position`` in the tree of ``size`` leaves (nodes
        of a tree never change once written: no snapshot is needed)."""
        with self._borrow() as conn:
            return tree.inclusion_proof(Nodes(conn), position, size)

    @_readable
    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The RFC 9162 consistency proof from the tree of ``first`` to that of ``second``."""
        with self._borrow() as conn:
            return tree.consistency_proof(Nodes(conn), first, second)


class PgReadModel(PgView):
    """The port's ``ReadModel`` on a ``PgLogStore``: each query on a pooled connection, or
    several in one ``snapshot()``."""

    def __init__(self, store: PgLogStore) -> None:
        super().__init__(store.reader, store.clock)
        self._store = store

    @contextmanager
    def snapshot(self) -> Iterator[ReadView]:
        """A view answering every query from one consistent state (see the module)."""
        with self._store.reader() as conn:
            try:
                with unavailable_on_driver_error("the ledger cannot be read now"):
                    head, now = _begin_snapshot(conn)
                clock = self._store.injected_clock or (lambda: now)
                yield PgView(lambda: nullcontext(conn), clock, head=head)
            finally:
                _end_snapshot(conn)


class PgUnitOfWork:
    """The port's ``UnitOfWork`` on a ``PgLogStore`` (its ``append_built``)."""

    def __init__(self, store: PgLogStore) -> None:
        self._store = store

    def decide_and_append(self, decide: Decide) -> list[Appended]:
        """Append what ``decide`` returns, given a view on the append's write transaction."""
        return self._store.append_built(
            lambda conn: decide(
                PgView(lambda: nullcontext(conn), self._store.clock, pipeline=False)
            )
        )


# -- queries on one connection -----------------------------------------------------------------
def _begin_snapshot(conn: Connection) -> tuple[int, datetime]:
    """Open the snapshot on ``conn`` (projection tables locked, see the module); its head and
    the database's clock, in one round trip."""
    with conn.pipeline():
        conn.execute(_SNAPSHOT)
        conn.execute(_LOCK)
        cur = conn.execute("SELECT coalesce(max(position), 0), clock_timestamp() FROM log")
    row = cur.fetchone()
    assert row is not None
    return int(row[0]), row[1]


def _end_snapshot(conn: Connection) -> None:
    """End the snapshot on ``conn`` (a lost connection is the pool's to discard)."""
    status = conn.info.transaction_status
    if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        with suppress(psycopg.Error):
            conn.execute("ROLLBACK")


def _bulk(
    conn: Connection,
    query: str,
    tenant: str,
    subaccount: str,
    msisdns: list[str],
    at: str,
    known_at: int,
    pipeline: bool,
) -> tuple[list[tuple[Any, ...]], UnknownRule]:
    """The rows of a bulk ``query`` and the ``unknown`` rule, in one round trip (pipelined
    when ``pipeline``, else two).

    The two statements need no common snapshot: as known at a position up to the head, the
    facts and the settings never change (the gate on ``consent_current`` is inside the bulk
    statement)."""
    params = {
        "tenant": tenant,
        "subaccount": subaccount,
        "numbers": _joined(msisdns),
        "at": at,
        "position": known_at,
    }
    with conn.pipeline() if pipeline else nullcontext():
        found = conn.execute(query, params, prepare=None if len(msisdns) <= PREPARED else False)
        rule = conn.execute(_UNKNOWN_RULE, params)
    row = rule.fetchone()
    assert row is not None
    return found.fetchall(), _rule(row)


def _joined(msisdns: Sequence[str]) -> str:
    """``msisdns`` as the bulk statements take them (``InvalidInput`` for a number that could
    not be sent that way: none that is E.164)."""
    joined = ",".join(msisdns)
    if joined.count(",") > max(len(msisdns) - 1, 0):
        bad = next(m for m in msisdns if "," in m)
        raise InvalidInput(f"{bad!r} is not an E.164 number")
    return joined


def _rule(row: Sequence[object]) -> UnknownRule:
    """The ``unknown`` rule from the settings known then and in force then, side by side."""
    known, in_force = row[:_WIDTH], row[_WIDTH : 2 * _WIDTH]
    return rule_of(
        None if known[0] is None else _settings(tuple(known)),
        None if in_force[0] is None else _settings(tuple(in_force)),
    )


@lru_cache(maxsize=1024)
def _settings(row: tuple[object, ...]) -> SubaccountSettings:
    """Settings from a ``subaccount_versions`` row (memoised: a version row never changes, and
    the settings are immutable)."""
    values = dict(zip(_SETTINGS_NAMES, row, strict=True))
    values["keywords"] = msgspec.json.decode(str(values["keywords"]), type=KeywordChanges)
    return msgspec.convert(values, SubaccountSettings)


def _review_item(row: Sequence[object]) -> ReviewItem:
    return msgspec.convert(dict(zip(_REVIEW_NAMES, row, strict=True)), ReviewItem)
