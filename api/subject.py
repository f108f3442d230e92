"""The subject of a per-number request: the key's tenant, a checked subaccount, an E.164 number."""

from __future__ import annotations

from api.auth import tenant_of
from api.keys import Principal
from projections.ids import valid_subaccount
from projections.ledger import ConsentLedger


def subject_of(
    principal: Principal, ledger: ConsentLedger, subaccount: str, msisdn: str
) -> tuple[str, str]:
    """(tenant, E.164 msisdn) for a request about ``msisdn`` under ``subaccount``.

    Refuses (``InvalidInput``, 422) a malformed subaccount id or a number that is not valid;
    bare national digits are read in the subaccount's default region.
    """
    tenant = tenant_of(principal)
    valid_subaccount(subaccount)
    return tenant, ledger.normalize_msisdn(tenant, subaccount, msisdn)
