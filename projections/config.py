"""The configuration projection: every version of every subaccount's and tenant's settings.

Guarantee: the current settings of a subaccount are those of its latest ``subaccount.configured``
entry; settings "as of" a position and valid time are those of the latest entry known then.
A subaccount is *known* once any configuration entry names it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache

import msgspec

from ledger.events import SubaccountConfigured, TenantConfigured, Unknown
from ledger.keywords import KeywordChanges, Mode, Policy
from ledger.store import Committed
from projections.positions import set_position


class SubaccountSettings(msgspec.Struct, frozen=True, kw_only=True):
    """A subaccount's settings as of one configuration entry."""

    tenant: str
    subaccount: str
    default_region: str | None
    mode: Mode
    unknown: Unknown
    keywords: KeywordChanges
    policy_version: int
    position: int
    occurred_at: str

    @property
    def policy(self) -> Policy:
        """The keyword policy these settings define, named ``<subaccount>@<version>``."""
        return Policy(
            id=self.subaccount, version=self.policy_version, mode=self.mode, changes=self.keywords
        )


_KEYWORDS_JSON = msgspec.json.Encoder(order="deterministic")
"""Keyword changes as the log stores them (keys sorted), so a live row equals a replayed one."""


class ConfigProjector:
    """Keeps ``subaccount_versions`` and ``tenant_versions`` in step with the log."""

    name = "config"

    def apply(self, conn: sqlite3.Connection, items: Sequence[Committed]) -> None:
        """Record each configuration entry as a new version."""
        for item in items:
            entry, event = item.entry, item.entry.event
            if isinstance(event, SubaccountConfigured):
                conn.execute(
                    "INSERT INTO subaccount_versions (position, tenant, subaccount, occurred_at, "
                    "default_region, mode, unknown, keywords, policy_version) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        entry.position,
                        entry.tenant,
                        entry.subaccount,
                        entry.occurred_at,
                        event.default_region,
                        event.mode,
                        event.unknown,
                        _KEYWORDS_JSON.encode(event.keywords).decode(),
                        event.policy_version,
                    ),
                )
            elif isinstance(event, TenantConfigured):
                conn.execute(
                    "INSERT INTO tenant_versions (position, tenant, occurred_at, revoke_all, "
                    "default_region) VALUES (?,?,?,?,?)",
                    (
                        entry.position,
                        entry.tenant,
                        entry.occurred_at,
                        int(event.revoke_all),
                        event.default_region,
                    ),
                )
        set_position(conn, self.name, items[-1].stored.position)

    def reset(self, conn: sqlite3.Connection) -> None:
        """Drop every version."""
        conn.execute("DELETE FROM subaccount_versions")
        conn.execute("DELETE FROM tenant_versions")
        set_position(conn, self.name, 0)


_SETTINGS_COLUMNS = (
    "tenant, subaccount, default_region, mode, unknown, keywords, policy_version, position, "
    "occurred_at"
)


_NAMES = [c.strip() for c in _SETTINGS_COLUMNS.split(",")]


@lru_cache(maxsize=1024)
def _settings(row: tuple[object, ...]) -> SubaccountSettings:
    """Settings from a ``subaccount_versions`` row (memoised: a version row never changes, and
    the settings are immutable)."""
    values = dict(zip(_NAMES, row, strict=True))
    values["keywords"] = msgspec.json.decode(str(values["keywords"]), type=KeywordChanges)
    return msgspec.convert(values, SubaccountSettings)


def subaccount_settings(
    conn: sqlite3.Connection,
    tenant: str,
    subaccount: str,
    *,
    position: int | None = None,
    at: str | None = None,
) -> SubaccountSettings | None:
    """Settings of ``subaccount`` as known at ``position`` and in force at valid time ``at``.

    ``None`` when no such configuration entry exists (the subaccount is unknown then).
    """
    row = conn.execute(
        f"SELECT {_SETTINGS_COLUMNS} FROM subaccount_versions WHERE tenant = ? "  # noqa: S608
        "AND subaccount = ? AND position <= coalesce(?, position) "
        "AND occurred_at <= coalesce(?, occurred_at) "
        "ORDER BY occurred_at DESC, position DESC LIMIT 1",
        (tenant, subaccount, position, at),
    ).fetchone()
    return None if row is None else _settings(row)


def list_subaccounts(conn: sqlite3.Connection, tenant: str) -> list[SubaccountSettings]:
    """The current settings of every known subaccount of ``tenant``, by id."""
    rows = conn.execute(
        f"SELECT {_SETTINGS_COLUMNS} FROM subaccount_versions v WHERE tenant = ? AND position = "  # noqa: S608
        "(SELECT max(position) FROM subaccount_versions w "
        " WHERE w.tenant = v.tenant AND w.subaccount = v.subaccount) ORDER BY subaccount",
        (tenant,),
    ).fetchall()
    return [_settings(r) for r in rows]


def revoke_all(conn: sqlite3.Connection, tenant: str) -> bool:
    """Whether ``tenant`` currently has ``revoke_all`` on (off unless configured)."""
    row = conn.execute(
        "SELECT revoke_all FROM tenant_versions WHERE tenant = ? ORDER BY position DESC LIMIT 1",
        (tenant,),
    ).fetchone()
    return bool(row and row[0])


def tenant_region(conn: sqlite3.Connection, tenant: str) -> str | None:
    """The default region ``tenant`` currently has (none unless configured)."""
    row = conn.execute(
        "SELECT default_region FROM tenant_versions WHERE tenant = ? "
        "ORDER BY position DESC LIMIT 1",
        (tenant,),
    ).fetchone()
    return None if row is None else row[0]
