"""The consent projection: bitemporal consent facts per (tenant, scope, msisdn).

A fact is one opt-out or opt-in entry: valid from its ``occurred_at``, known from its position
until the position of the retraction that removed it (if any). Scope ``''`` is tenant-wide.
``consent_current`` keeps, per (tenant, msisdn, scope), the fact that is latest (by occurred time,
ties by position) among those not retracted. Guarantee: both tables are pure functions of the
log — applying entries live and replaying the log into empty tables give the same rows. The
projector lives in the adapter (``projections.sqlite.projectors``).
"""

from __future__ import annotations

TENANT_SCOPE = ""
"""The scope key of a tenant-wide fact (the SQL projection's and the reference fold's)."""
