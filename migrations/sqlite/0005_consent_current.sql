-- The current consent fact per (tenant, msisdn, scope): of the facts not retracted, the latest by
-- occurred time, ties by position. A compact copy of rows in consent_facts, kept by the consent
-- projector in the same transaction, so a bulk decision at the log head is one primary-key
-- look-up per number and scope (projections/decisions.py falls back to consent_facts whenever
-- this row cannot answer: a fact dated after the decision's valid time, or an earlier log
-- position). scope '' = tenant-wide.
CREATE TABLE consent_current (
    position     INTEGER NOT NULL,
    tenant       TEXT    NOT NULL,
    msisdn       TEXT    NOT NULL,
    scope        TEXT    NOT NULL,
    occurred_at  TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('opted_out', 'opted_in')),
    PRIMARY KEY (tenant, msisdn, scope)
) WITHOUT ROWID;

-- Fill it for a log that already has facts (an upgrade): the same rows the projector keeps.
INSERT INTO consent_current (position, tenant, msisdn, scope, occurred_at, state)
SELECT position, tenant, msisdn, scope, occurred_at, state
FROM (
    SELECT position, tenant, msisdn, scope, occurred_at, state,
           row_number() OVER (
               PARTITION BY tenant, msisdn, scope ORDER BY occurred_at DESC, position DESC
           ) AS latest
    FROM consent_facts
    WHERE retracted_by IS NULL
)
WHERE latest = 1;
