"""The SQLite read model and unit of work (``projections.read_model``): every query of the
projections, the audit trail, the review queue, operations and tamper evidence.

Beyond the port: bulk decisions run as one query, whatever the number of msisdns: as known at
the consent projection's position (the log head) they read ``consent_current`` and fall back to
the full bitemporal query, for the numbers concerned, only where a current fact is dated after
the valid time asked about; as known at an earlier position they use the full query. A driver
error that means the database cannot be read now (locked, I/O, not a database) is raised as
``StoreUnavailable``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import lru_cache, wraps
from typing import Any, TypeVar, cast

import msgspec

from ledger.checkpoint_log import CheckpointRecord
from ledger.errors import StoreUnavailable
from ledger.keywords import KeywordChanges
from ledger.sqlite import checkpoints as checkpoint_log
from ledger.sqlite import tree
from ledger.sqlite.migrate import pending
from ledger.sqlite.store import RARE_TYPES, SqliteLogStore, head_of
from ledger.store import Appended, StoredEntry
from ledger.timefmt import format_time, parse_time
from projections.config import PolicyConflict, SubaccountSettings
from projections.decisions import BulkStates, Decision, Fact, State, UnknownRule, decision
from projections.decisions import unknown_rule as rule_of
from projections.eightxeight.outbox import OutboxCounts, Reply
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
from projections.sqlite import outbox
from projections.sqlite.projectors import policy_version_conflicts
from projections.timeline import Interval, TimelineFact, intervals_from

_FACT = (
    "SELECT g.position FROM consent_facts g WHERE g.tenant = :tenant AND g.msisdn = {msisdn} "
    "AND g.scope IN (:subaccount, '') AND g.position <= :position "
    "AND (g.retracted_by IS NULL OR g.retracted_by > :position) AND g.occurred_at <= :at "
    "ORDER BY g.occurred_at DESC, g.position DESC LIMIT 1"
)
_ROW = "f.position, f.event_id, f.type, f.occurred_at, f.keyword, f.state, f.scope"
_KNOWN = (
    "g.tenant = :tenant AND g.position <= :position "
    "AND (g.retracted_by IS NULL OR g.retracted_by > :position) AND g.occurred_at <= :at"
)
# The deciding fact of each number of a page, kept when it is an opt-out (``_FACT``'s rule).
_SUPPRESSED = (
    "SELECT j.value, f.scope, f.position FROM json_each(:numbers) j "  # noqa: S608
    f"JOIN consent_facts f ON f.position = ({_FACT.format(msisdn='j.value')}) "
    "WHERE f.state = 'opted_out' ORDER BY j.value"
)
# A tenant-wide opt-out deciding among tenant-wide facts, and no subaccount whose own latest
# fact is a later opt-in (that subaccount may send: the number is not suppressed everywhere).
_SUPPRESSED_EVERYWHERE = (
    "SELECT j.value, f.scope, f.position FROM json_each(:numbers) j "  # noqa: S608
    "JOIN consent_facts f ON f.position = ("
    f" SELECT g.position FROM consent_facts g WHERE {_KNOWN} AND g.msisdn = j.value "
    " AND g.scope = '' ORDER BY g.occurred_at DESC, g.position DESC LIMIT 1) "
    "WHERE f.state = 'opted_out' AND NOT EXISTS ("
    f" SELECT 1 FROM consent_facts g WHERE {_KNOWN} AND g.msisdn = j.value AND g.scope != '' "
    " AND g.state = 'opted_in' AND (g.occurred_at, g.position) > (f.occurred_at, f.position) "
    " AND NOT EXISTS (SELECT 1 FROM consent_facts k WHERE k.tenant = g.tenant "
    "  AND k.msisdn = g.msisdn AND k.scope = g.scope AND k.position <= :position "
    "  AND (k.retracted_by IS NULL OR k.retracted_by > :position) AND k.occurred_at <= :at "
    "  AND (k.occurred_at, k.position) > (g.occurred_at, g.position))"
    ") ORDER BY j.value"
)
# Per (msisdn, scope) of a page, its latest fact as known and in force.
_STATES = (
    "SELECT p.msisdn, p.scope, ("  # noqa: S608
    f" SELECT g.position FROM consent_facts g WHERE {_KNOWN} AND g.msisdn = p.msisdn "
    " AND g.scope = p.scope ORDER BY g.occurred_at DESC, g.position DESC LIMIT 1) AS decided "
    "FROM (SELECT msisdn, scope FROM consent_facts WHERE tenant = :tenant "
    " AND (msisdn, scope) > (:after_msisdn, :after_scope) GROUP BY msisdn, scope "
    " ORDER BY msisdn, scope LIMIT :limit) p ORDER BY p.msisdn, p.scope"
)
# Consent facts with unerased evidence that a later, unretracted fact of the same number and
# scope superseded, or a retraction removed, by ``before`` (recorded time).
_SUPERSEDED = (
    "SELECT f.position FROM consent_facts f JOIN evidence e ON e.position = f.position "
    "WHERE f.position > :after AND f.tenant = :tenant AND e.salt IS NOT NULL AND ("
    " (f.retracted_by IS NOT NULL AND "
    "  (SELECT r.recorded_at FROM log r WHERE r.position = f.retracted_by) <= :before)"
    " OR EXISTS (SELECT 1 FROM consent_facts g JOIN log l ON l.position = g.position "
    "  WHERE g.tenant = f.tenant AND g.msisdn = f.msisdn AND g.scope = f.scope "
    "  AND g.retracted_by IS NULL AND (g.occurred_at, g.position) > (f.occurred_at, f.position) "
    "  AND l.recorded_at <= :before)"
    ") ORDER BY f.position LIMIT :limit"
)
_CURRENT = (
    "SELECT msisdn, occurred_at, position, state FROM consent_current WHERE tenant = ? "
    "AND msisdn IN (SELECT value FROM json_each(?)) AND +scope IN (?, '')"
)
_SETTINGS_COLUMNS = (
    "tenant, subaccount, default_region, mode, unknown, keywords, policy_version, position, "
    "occurred_at"
)
_SETTINGS_NAMES = [c.strip() for c in _SETTINGS_COLUMNS.split(",")]
_REVIEW_COLUMNS = (
    "position, kind, subaccount, msisdn, keyword, occurred_at, recorded_at, closed_by, closed_how"
)
_REVIEW_NAMES = [c.strip() for c in _REVIEW_COLUMNS.split(",")]
_TARGETING = ("entry.retracted", "review.resolved")
_HIGH_VOLUME = ("consent.revoked", "consent.granted", "help.requested", "review.flagged")
_ENCODE = msgspec.json.Encoder().encode

F = TypeVar("F", bound=Callable[..., Any])


def _readable(method: F) -> F:
    """``method`` with the driver's "cannot read now" errors raised as ``StoreUnavailable``."""

    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the ledger cannot be read now: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:  # integrity, programming: a bug
                raise
            raise StoreUnavailable(f"the ledger cannot be read now: {exc}") from exc

    return cast(F, wrapper)


class SqliteView:
    """The port's ``ReadView`` on one connection (inside a read snapshot, or the writer's
    transaction for a unit of work)."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], datetime]) -> None:
        self._connection = conn
        self._clock = clock

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._connection

    @_readable
    def head(self) -> int:
        """The newest log position this view sees (0 for an empty log)."""
        return head_of(self._conn)

    def now(self) -> str:
        """The current time of the store's clock."""
        return format_time(self._clock())

    # -- configuration ----------------------------------------------------------------------
    @_readable
    def settings(
        self, tenant: str, subaccount: str, *, position: int | None = None, at: str | None = None
    ) -> SubaccountSettings | None:
        """Settings of ``subaccount`` as known at ``position`` and in force at valid time ``at``."""
        row = self._conn.execute(
            f"SELECT {_SETTINGS_COLUMNS} FROM subaccount_versions WHERE tenant = ? "  # noqa: S608
            "AND subaccount = ? AND position <= coalesce(?, position) "
            "AND occurred_at <= coalesce(?, occurred_at) "
            "ORDER BY occurred_at DESC, position DESC LIMIT 1",
            (tenant, subaccount, position, at),
        ).fetchone()
        return None if row is None else _settings(row)

    @_readable
    def subaccounts(self, tenant: str) -> list[SubaccountSettings]:
        """The current settings of every known subaccount of ``tenant``, by id."""
        rows = self._conn.execute(
            f"SELECT {_SETTINGS_COLUMNS} FROM subaccount_versions v WHERE tenant = ? "  # noqa: S608
            "AND position = (SELECT max(position) FROM subaccount_versions w "
            " WHERE w.tenant = v.tenant AND w.subaccount = v.subaccount) ORDER BY subaccount",
            (tenant,),
        ).fetchall()
        return [_settings(r) for r in rows]

    @_readable
    def revoke_all(self, tenant: str) -> bool:
        """Whether ``tenant`` currently has ``revoke_all`` on (off unless configured)."""
        row = self._conn.execute(
            "SELECT revoke_all FROM tenant_versions WHERE tenant = ? "
            "ORDER BY position DESC LIMIT 1",
            (tenant,),
        ).fetchone()
        return bool(row and row[0])

    @_readable
    def tenant_region(self, tenant: str) -> str | None:
        """The default region ``tenant`` currently has (none unless configured)."""
        row = self._conn.execute(
            "SELECT default_region FROM tenant_versions WHERE tenant = ? "
            "ORDER BY position DESC LIMIT 1",
            (tenant,),
        ).fetchone()
        return None if row is None else cast(str | None, row[0])

    # -- decisions and timelines -------------------------------------------------------------
    @_readable
    def decide(self, tenant: str, subaccount: str, msisdn: str, at: str, known_at: int) -> Decision:
        """The decision for one number."""
        row = self._conn.execute(
            f"SELECT {_ROW} FROM consent_facts f "  # noqa: S608
            f"WHERE f.position = ({_FACT.format(msisdn=':msisdn')})",
            {
                "tenant": tenant,
                "subaccount": subaccount,
                "msisdn": msisdn,
                "at": at,
                "position": known_at,
            },
        ).fetchone()
        return decision(row, self._unknown_rule(tenant, subaccount, at, known_at), at, known_at)

    @_readable
    def decide_many(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], at: str, known_at: int
    ) -> dict[str, Decision]:
        """Decisions for many E.164 numbers at once; keyed by msisdn."""
        distinct = list(dict.fromkeys(msisdns))
        found = self._deciding_facts(tenant, subaccount, distinct, at, known_at)
        rows = self._conn.execute(
            f"SELECT {_ROW} FROM consent_facts f "  # noqa: S608
            "WHERE f.position IN (SELECT value FROM json_each(?))",
            (_json([position for position, _ in found.values()]),),
        )
        by_position: dict[int, Fact] = {r[0]: r for r in rows}
        unknown = self._unknown_rule(tenant, subaccount, at, known_at)
        return {
            m: decision(by_position[found[m][0]] if m in found else None, unknown, at, known_at)
            for m in distinct
        }

    @_readable
    def states_many(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], at: str, known_at: int
    ) -> BulkStates:
        """The states ``decide_many`` would give (allowed and state, not who decided or why)."""
        found = self._deciding_facts(tenant, subaccount, msisdns, at, known_at)
        unknown = self._unknown_rule(tenant, subaccount, at, known_at)
        states: dict[str, State] = {m: state for m, (_, state) in found.items()}
        return BulkStates(states, unknown.allow, unknown.known)

    @_readable
    def intervals(self, tenant: str, subaccount: str, msisdn: str, known_at: int) -> list[Interval]:
        """The consent intervals of (subaccount, msisdn) as known at position ``known_at``."""
        rows: list[TimelineFact] = self._conn.execute(
            "SELECT position, occurred_at, state, scope FROM consent_facts WHERE tenant = ? "
            "AND msisdn = ? AND scope IN (?, '') AND position <= ? "
            "AND (retracted_by IS NULL OR retracted_by > ?) ORDER BY occurred_at, position",
            (tenant, msisdn, subaccount, known_at, known_at),
        ).fetchall()
        return intervals_from(rows)

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
        """See the port: as known at the head, one ordered pass over ``consent_current``
        (the full bitemporal look-up only for numbers whose current fact is dated after
        ``at``); otherwise a page of numbers (index order), then one look-up each."""
        if subaccount is not None and self._current_is_exact(known_at):
            return self._suppressed_now(tenant, subaccount, at, known_at, after[0], limit)
        numbers = [
            r[0]
            for r in self._conn.execute(
                "SELECT DISTINCT msisdn FROM consent_facts WHERE tenant = ? AND msisdn > ? "
                "ORDER BY msisdn LIMIT ?",
                (tenant, after[0], limit),
            )
        ]
        if not numbers:
            return FactPage([], None)
        query = _SUPPRESSED if subaccount is not None else _SUPPRESSED_EVERYWHERE
        facts = self._suppressed_among(query, tenant, subaccount, numbers, at, known_at)
        cursor = (numbers[-1], "") if len(numbers) == limit else None
        return FactPage(facts, cursor)

    def _suppressed_among(
        self,
        query: str,
        tenant: str,
        subaccount: str | None,
        numbers: Sequence[str],
        at: str,
        known_at: int,
    ) -> list[NumberFact]:
        rows = self._conn.execute(
            query,
            {
                "tenant": tenant,
                "subaccount": subaccount,
                "numbers": _json(numbers),
                "at": at,
                "position": known_at,
            },
        )
        return [NumberFact(m, scope, position) for m, scope, position in rows]

    def _suppressed_now(
        self, tenant: str, subaccount: str, at: str, known_at: int, after: str, limit: int
    ) -> FactPage:
        """``suppressed`` from ``consent_current`` (exact as known at the head)."""
        limit = max(limit, 3)  # a number has at most two rows here (its scope and tenant-wide)
        rows = self._conn.execute(
            "SELECT msisdn, scope, position, occurred_at, state FROM consent_current "
            "WHERE tenant = ? AND msisdn > ? AND scope IN (?, '') ORDER BY msisdn LIMIT ?",
            (tenant, after, subaccount, limit),
        ).fetchall()
        cursor = None
        if len(rows) == limit:  # the last number's rows may go on in the next page
            last = rows[-1][0]
            rows = [r for r in rows if r[0] != last]
            cursor = (rows[-1][0], "")
        best: dict[str, tuple[str, int, str, str]] = {}
        later: set[str] = set()
        for msisdn, scope, position, occurred_at, state in rows:
            if occurred_at > at:
                later.add(msisdn)
            seen = best.get(msisdn)
            if seen is None or (occurred_at, position) > seen[:2]:
                best[msisdn] = (occurred_at, position, state, scope)
        facts = [
            NumberFact(m, scope, position)
            for m, (_, position, state, scope) in best.items()
            if m not in later and state == "opted_out"
        ]
        if later:
            facts += self._suppressed_among(
                _SUPPRESSED, tenant, subaccount, sorted(later), at, known_at
            )
            facts.sort(key=lambda f: f.msisdn)
        return FactPage(facts, cursor)

    @_readable
    def consent_states(
        self, tenant: str, at: str, known_at: int, after: tuple[str, str], limit: int
    ) -> FactPage:
        """See the port: a page of (msisdn, scope) pairs (index order), one look-up each."""
        rows = self._conn.execute(
            _STATES,
            {
                "tenant": tenant,
                "after_msisdn": after[0],
                "after_scope": after[1],
                "limit": limit,
                "at": at,
                "position": known_at,
            },
        ).fetchall()
        facts = [NumberFact(m, scope, position) for m, scope, position in rows if position]
        cursor = (rows[-1][0], rows[-1][1]) if len(rows) == limit else None
        return FactPage(facts, cursor)

    @_readable
    def superseded(self, tenant: str, before: str, after: int, limit: int) -> list[int]:
        """See the port: one pass over the facts in position order, a page at a time."""
        rows = self._conn.execute(
            _SUPERSEDED, {"tenant": tenant, "before": before, "after": after, "limit": limit}
        )
        return [int(r[0]) for r in rows]

    @_readable
    def configured_tenants(self) -> list[str]:
        """Every tenant with a ``tenant.configured`` entry."""
        rows = self._conn.execute("SELECT DISTINCT tenant FROM tenant_versions ORDER BY tenant")
        return [str(r[0]) for r in rows]

    @_readable
    def position_known_at(self, recorded_at: str) -> int:
        """The last log position recorded at or before ``recorded_at`` (0 if none).

        A binary search over positions (O(log n) primary-key look-ups): ``recorded_at`` never
        decreases with position (the store's guarantee, checked by ``verify``) and positions are
        dense, so the log needs no index by recorded time. Consistent without a read
        transaction: the rows at or below the head read first never change.
        """
        lo = 0  # 0, or a position recorded at or before ``recorded_at``
        hi = head_of(self._conn)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            row = self._conn.execute(
                "SELECT recorded_at FROM log WHERE position = ?", (mid,)
            ).fetchone()
            if row[0] <= recorded_at:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _deciding_facts(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], at: str, known_at: int
    ) -> dict[str, tuple[int, State]]:
        """(position, state) of the fact deciding each number that has one (the rule of
        ``projections.decisions``)."""
        if not self._current_is_exact(known_at):
            return self._full(tenant, subaccount, msisdns, at, known_at)
        best: dict[str, tuple[str, int, State]] = {}
        later: set[str] = set()  # a current fact dated after ``at``: the full query must decide
        rows = self._conn.execute(_CURRENT, (tenant, _json(msisdns), subaccount))
        for msisdn, occurred_at, position, state in rows:
            if occurred_at > at:
                later.add(msisdn)
                continue
            seen = best.get(msisdn)
            if seen is None or (occurred_at, position) > seen[:2]:
                best[msisdn] = (occurred_at, position, state)
        found = {m: (position, state) for m, (_, position, state) in best.items() if m not in later}
        if later:
            found.update(self._full(tenant, subaccount, sorted(later), at, known_at))
        return found

    def _current_is_exact(self, known_at: int) -> bool:
        """Whether ``consent_current`` holds the latest facts as known at ``known_at``: it has
        applied the log up to a position at or before it."""
        row = self._conn.execute("SELECT position FROM projection_positions WHERE name = 'consent'")
        applied = row.fetchone()
        return applied is not None and known_at >= applied[0]

    def _full(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], at: str, known_at: int
    ) -> dict[str, tuple[int, State]]:
        """The full bitemporal query (``_FACT``) for each number."""
        rows = self._conn.execute(
            "SELECT j.value, f.position, f.state FROM json_each(:numbers) j "  # noqa: S608
            f"JOIN consent_facts f ON f.position = ({_FACT.format(msisdn='j.value')})",
            {
                "tenant": tenant,
                "subaccount": subaccount,
                "numbers": _json(msisdns),
                "at": at,
                "position": known_at,
            },
        )
        return {m: (position, state) for m, position, state in rows}

    def _unknown_rule(self, tenant: str, subaccount: str, at: str, known_at: int) -> UnknownRule:
        known = self.settings(tenant, subaccount, position=known_at)
        return rule_of(known, self.settings(tenant, subaccount, position=known_at, at=at))

    # -- entries and evidence ----------------------------------------------------------------
    @_readable
    def entries_at(self, positions: Sequence[int]) -> list[StoredEntry]:
        """The entries at ``positions`` that exist, in position order."""
        return _stored(
            self._conn.execute(
                "SELECT position, entry, leaf_hash FROM log WHERE position IN "
                "(SELECT value FROM json_each(?)) ORDER BY position",
                (_json(list(positions)),),
            ).fetchall()
        )

    @_readable
    def number_entries(self, tenant: str, msisdn: str) -> list[StoredEntry]:
        """Every entry of ``tenant`` about ``msisdn``, in position order."""
        return _stored(
            self._conn.execute(
                "SELECT position, entry, leaf_hash FROM log WHERE tenant = ? AND msisdn = ? "
                "ORDER BY position",
                (tenant, msisdn),
            ).fetchall()
        )

    @_readable
    def targeting_entries(self, tenant: str, positions: Sequence[int]) -> list[StoredEntry]:
        """The retractions and review resolutions of ``tenant`` targeting ``positions``."""
        if not positions:
            return []
        return _stored(
            self._conn.execute(
                # +tenant: search by type (rare entries), never every entry of the tenant
                "SELECT position, entry, leaf_hash FROM log WHERE type IN (?, ?) "  # noqa: S608
                f"AND {RARE_TYPES} AND +tenant = ? "
                "AND json_extract(CAST(entry AS TEXT), '$.event.position') IN "
                "(SELECT value FROM json_each(?)) ORDER BY position",
                (*_TARGETING, tenant, _json(list(positions))),
            ).fetchall()
        )

    @_readable
    def configuration_entries(self, tenant: str, subaccount: str) -> list[StoredEntry]:
        """The configuration entries of ``subaccount`` and of ``tenant``, in position order."""
        return _stored(
            self._conn.execute(
                # two searches by type (rare entries), never a pass over every entry of the tenant
                "SELECT position, entry, leaf_hash FROM log WHERE type = 'subaccount.configured' "  # noqa: S608
                f"AND {RARE_TYPES} AND tenant = ? AND subaccount = ? UNION ALL "
                "SELECT position, entry, leaf_hash FROM log WHERE type = 'tenant.configured' "
                f"AND {RARE_TYPES} AND tenant = ? ORDER BY position",
                (tenant, subaccount, tenant),
            ).fetchall()
        )

    @_readable
    def entries_of_types(
        self, tenant: str, types: Sequence[str], *, subaccount: str | None = None
    ) -> list[StoredEntry]:
        """Every entry of ``tenant`` of one of ``types`` (rare types), in position order."""
        common = set(types) & set(_HIGH_VOLUME)
        if common:
            raise ValueError(f"not a rare entry type: {sorted(common)}")
        where = "" if subaccount is None else " AND subaccount = ?"
        params = [_json(list(types)), tenant] + ([] if subaccount is None else [subaccount])
        return _stored(
            self._conn.execute(
                "SELECT position, entry, leaf_hash FROM log WHERE type IN "  # noqa: S608
                f"(SELECT value FROM json_each(?)) AND {RARE_TYPES} AND +tenant = ?{where} "
                "ORDER BY position",
                params,
            ).fetchall()
        )

    @_readable
    def open_replies(self, *, after: int = 0, limit: int = 100) -> list[Reply]:
        """Open outbox rows after ``after``, oldest first."""
        return outbox.open_replies(self._conn, after=after, limit=limit)

    @_readable
    def replies_at(self, position: int) -> list[Reply]:
        """The outbox rows of the entry at ``position``."""
        return outbox.replies_at(self._conn, position)

    @_readable
    def reply_for_message(self, tenant: str, event_id: str) -> Reply | None:
        """The reply row whose ``clientMessageId`` is ``event_id``."""
        return outbox.reply_for_message(self._conn, tenant, event_id)

    @_readable
    def outbox_counts(self) -> OutboxCounts:
        """Outbox rows per action and state, and the oldest open one's recorded time."""
        return outbox.outbox_counts(self._conn)

    @_readable
    def evidence(self, positions: Sequence[int]) -> Evidence:
        """The evidence rows of ``positions`` (see ``Evidence``)."""
        if not positions:
            return {}
        rows = self._conn.execute(
            "SELECT position, salt, content FROM evidence WHERE position IN "
            "(SELECT value FROM json_each(?))",
            (_json(list(positions)),),
        )
        return {p: (s, c) for p, s, c in rows}

    # -- review queue ------------------------------------------------------------------------
    @_readable
    def review_item(self, tenant: str, position: int) -> ReviewItem | None:
        """The review item at ``position`` of ``tenant``, open or closed."""
        row = self._conn.execute(
            f"SELECT {_REVIEW_COLUMNS} FROM review_items WHERE tenant = ? AND position = ?",  # noqa: S608
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
        rows = self._conn.execute(
            f"SELECT {_REVIEW_COLUMNS} FROM review_items WHERE tenant = ? "  # noqa: S608
            "AND closed_by IS NULL AND position > ? AND (? IS NULL OR kind = ?) "
            "AND (? IS NULL OR subaccount = ?) AND (? IS NULL OR recorded_at < ?) "
            "ORDER BY position LIMIT ?",
            (tenant, after, kind, kind, subaccount, subaccount, recorded_before,
             recorded_before, limit),
        ).fetchall()  # fmt: skip
        return [_review_item(r) for r in rows]

    @_readable
    def review_backlog(self, tenant: str | None = None) -> list[ReviewBacklog]:
        """Open review items per kind, across all tenants or of ``tenant`` alone."""
        rows = self._conn.execute(
            "SELECT kind, count(*), min(recorded_at) FROM review_items "
            "WHERE closed_by IS NULL AND (? IS NULL OR tenant = ?) GROUP BY kind ORDER BY kind",
            (tenant, tenant),
        ).fetchall()
        return [ReviewBacklog(str(kind), int(n), str(oldest)) for kind, n, oldest in rows]

    # -- operations --------------------------------------------------------------------------
    @_readable
    def projection_positions(self) -> dict[str, int]:
        """The last log position each projection has applied, by projection name."""
        rows = self._conn.execute("SELECT name, position FROM projection_positions ORDER BY name")
        return {str(name): int(position) for name, position in rows}

    @_readable
    def quarantine_size(self) -> int:
        """Webhook bodies in quarantine, across all tenants."""
        return int(self._conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])

    @_readable
    def quarantine_summary(self, tenant: str) -> QuarantineSummary:
        """How many bodies of ``tenant`` are in quarantine, and the oldest one's receive time."""
        count, oldest = self._conn.execute(
            "SELECT count(*), min(received_at) FROM quarantine WHERE tenant = ?", (tenant,)
        ).fetchone()
        return QuarantineSummary(int(count), None if oldest is None else str(oldest))

    @_readable
    def consent_per_day(self, tenant: str, since: str) -> list[ConsentDay]:
        """Opt-outs and opt-ins of ``tenant`` per UTC day recorded at or after ``since``: the
        positions recorded since then found by binary search (``position_known_at``), their
        consent facts read by position."""
        earlier = format_time(parse_time(since) - timedelta(milliseconds=1))
        first = self.position_known_at(earlier) + 1
        rows = self._conn.execute(
            "SELECT substr(l.recorded_at, 1, 10) AS day, "
            "sum(f.state = 'opted_out'), sum(f.state = 'opted_in') "
            "FROM consent_facts f JOIN log l ON l.position = f.position "
            "WHERE f.position >= ? AND f.tenant = ? GROUP BY day ORDER BY day",
            (first, tenant),
        ).fetchall()
        return [ConsentDay(str(day), int(out), int(in_)) for day, out, in_ in rows]

    @_readable
    def policy_version_conflicts(self) -> list[PolicyConflict]:
        """See the port."""
        return policy_version_conflicts(self._conn)

    @_readable
    def pending_migrations(self) -> list[str]:
        """Names of the schema migrations not yet applied."""
        return [m.name for m in pending(self._conn)]

    # -- tamper evidence ---------------------------------------------------------------------
    @_readable
    def latest_checkpoint(self) -> CheckpointRecord | None:
        """The newest signed checkpoint."""
        return checkpoint_log.latest(self._conn)

    @_readable
    def checkpoints_since(self, size: int, limit: int) -> list[CheckpointRecord]:
        """Up to ``limit`` checkpoints of size >= ``size``, oldest first."""
        return checkpoint_log.since(self._conn, size, limit)

    @_readable
    def tree_size(self) -> int:
        """The number of leaves in the Merkle tree."""
        return tree.tree_size(self._conn)

    @_readable
    def inclusion_proof(self, position: int, size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of ``position`` in the tree of ``size`` leaves."""
        return tree.inclusion_proof(self._conn, position, size)

    @_readable
    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The RFC 9162 consistency proof from the tree of ``first`` to that of ``second``."""
        return tree.consistency_proof(self._conn, first, second)


class SqliteReadModel(SqliteView):
    """The port's ``ReadModel`` on a ``SqliteLogStore``: each query on this thread's read-only
    connection (a query that takes several statements in a read snapshot of its own), or
    several in one ``snapshot()``."""

    def __init__(self, store: SqliteLogStore) -> None:
        self._store = store
        self._clock = store.clock

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._store.reader()

    @contextmanager
    def snapshot(self) -> Iterator[ReadView]:
        """A view answering every query from one consistent state of the database."""
        with _readable_block(), self._store.snapshot() as conn:
            yield SqliteView(conn, self._store.clock)

    def decide(self, tenant: str, subaccount: str, msisdn: str, at: str, known_at: int) -> Decision:
        """The decision for one number (in a snapshot of its own)."""
        with self.snapshot() as view:
            return view.decide(tenant, subaccount, msisdn, at, known_at)

    def decide_many(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], at: str, known_at: int
    ) -> dict[str, Decision]:
        """Decisions for many numbers (in a snapshot of their own)."""
        with self.snapshot() as view:
            return view.decide_many(tenant, subaccount, msisdns, at, known_at)

    def states_many(
        self, tenant: str, subaccount: str, msisdns: Sequence[str], at: str, known_at: int
    ) -> BulkStates:
        """Bulk states (in a snapshot of their own)."""
        with self.snapshot() as view:
            return view.states_many(tenant, subaccount, msisdns, at, known_at)

    def configuration_entries(self, tenant: str, subaccount: str) -> list[StoredEntry]:
        """The configuration entries of ``subaccount`` and of ``tenant`` (one snapshot)."""
        with self.snapshot() as view:
            return view.configuration_entries(tenant, subaccount)


class SqliteUnitOfWork:
    """The port's ``UnitOfWork`` on a ``SqliteLogStore`` (its ``append_built``)."""

    def __init__(self, store: SqliteLogStore) -> None:
        self._store = store

    def decide_and_append(self, decide: Decide) -> list[Appended]:
        """Append what ``decide`` returns, given a view on the append's write transaction."""
        return self._store.append_built(lambda conn: decide(SqliteView(conn, self._store.clock)))


@contextmanager
def _readable_block() -> Iterator[None]:
    """The driver's "cannot read now" errors of a block raised as ``StoreUnavailable``."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"the ledger cannot be read now: {exc}") from exc


@lru_cache(maxsize=1024)
def _settings(row: tuple[object, ...]) -> SubaccountSettings:
    """Settings from a ``subaccount_versions`` row (memoised: a version row never changes, and
    the settings are immutable)."""
    values = dict(zip(_SETTINGS_NAMES, row, strict=True))
    values["keywords"] = msgspec.json.decode(str(values["keywords"]), type=KeywordChanges)
    return msgspec.convert(values, SubaccountSettings)


def _review_item(row: tuple[object, ...]) -> ReviewItem:
    return msgspec.convert(dict(zip(_REVIEW_NAMES, row, strict=True)), ReviewItem)


def _stored(rows: list[tuple[int, bytes, bytes]]) -> list[StoredEntry]:
    return [StoredEntry(p, d, h) for p, d, h in rows]


def _json(values: Sequence[object]) -> str:
    """A JSON array for ``json_each`` (msgspec: several times faster than ``json.dumps``)."""
    return _ENCODE(list(values)).decode()
