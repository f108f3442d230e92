"""The configuration projection: every version of every subaccount's and tenant's settings.

Guarantee: the current settings of a subaccount are those of its latest ``subaccount.configured``
entry; settings "as of" a position and valid time are those of the latest entry known then.
A subaccount is *known* once any configuration entry names it. The projector and its queries
live in the adapter (``projections.sqlite``).
"""

from __future__ import annotations

import msgspec

from ledger.errors import Conflict
from ledger.events import Unknown
from ledger.keywords import KeywordChanges, Mode, Policy


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


class PolicyVersionClash(Conflict):
    """A configuration entry whose policy version already names another policy (mode or keyword
    lists) of the same subaccount: refused, nothing written."""


class PolicyConflict(msgspec.Struct, frozen=True, kw_only=True):
    """A policy version that names more than one policy, and the entries that set them."""

    tenant: str
    subaccount: str
    policy_version: int
    positions: list[int]
