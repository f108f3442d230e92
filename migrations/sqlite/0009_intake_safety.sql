-- A quarantined body is kept byte for byte up to 64 KiB; a longer one keeps that prefix, and
-- these columns describe the whole body (both NULL when the body was kept whole).
ALTER TABLE quarantine ADD COLUMN body_length INTEGER;
ALTER TABLE quarantine ADD COLUMN body_sha256 TEXT;

-- The tenant's default region: national numbers of an opt-out whose subaccount is unresolved.
ALTER TABLE tenant_versions ADD COLUMN default_region TEXT;

-- Review items gain the kind 'check': an opt-out recorded (and suppressing) that a person should
-- look at, because its key named another request or its text reads as another action.
CREATE TABLE review_items_new (
    position     INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('flagged', 'unresolved', 'check')),
    subaccount   TEXT,
    msisdn       TEXT,
    keyword      TEXT,
    occurred_at  TEXT    NOT NULL,
    recorded_at  TEXT    NOT NULL,
    closed_by    INTEGER,
    closed_how   TEXT
);
INSERT INTO review_items_new SELECT position, tenant, kind, subaccount, msisdn, keyword,
    occurred_at, recorded_at, closed_by, closed_how FROM review_items;
DROP TABLE review_items;
ALTER TABLE review_items_new RENAME TO review_items;
CREATE INDEX review_items_open ON review_items (tenant, position) WHERE closed_by IS NULL;
