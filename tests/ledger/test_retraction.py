"""The retraction rule on its own, through the reads any adapter gives it."""

from __future__ import annotations

import pytest

from ledger.errors import RetractionError
from ledger.retraction import MAX_POSITION, check_retraction


class Log:
    """Entries as (tenant, type) by position, and retractions by (tenant, target)."""

    def __init__(self) -> None:
        self.entries = {1: ("acme", "consent.revoked"), 2: ("acme", "subaccount.configured")}
        self.retracted: dict[tuple[str, int], int] = {}
        self.asked: list[int] = []

    def type_at(self, tenant: str, position: int) -> str | None:
        self.asked.append(position)
        found = self.entries.get(position)
        return found[1] if found is not None and found[0] == tenant else None

    def retraction_of(self, tenant: str, position: int) -> int | None:
        return self.retracted.get((tenant, position))


def test_a_retractable_entry_of_the_tenant_passes() -> None:
    check_retraction(Log(), "acme", 1)


@pytest.mark.parametrize("target", [0, -1, 3, MAX_POSITION + 1])
def test_no_entry_there(target: int) -> None:
    log = Log()
    with pytest.raises(RetractionError, match=f"no entry at position {target} to retract"):
        check_retraction(log, "acme", target)
    assert MAX_POSITION + 1 not in log.asked  # never asked for a position no store can hold


def test_another_tenants_entry_is_not_there() -> None:
    with pytest.raises(RetractionError, match="no entry at position 1 to retract"):
        check_retraction(Log(), "other", 1)


def test_configuration_cannot_be_retracted() -> None:
    with pytest.raises(RetractionError, match=r"a subaccount.configured entry \(position 2\)"):
        check_retraction(Log(), "acme", 2)


def test_twice_is_refused_naming_the_first() -> None:
    log = Log()
    log.retracted["acme", 1] = 7
    with pytest.raises(RetractionError, match="already retracted by position 7"):
        check_retraction(log, "acme", 1)
