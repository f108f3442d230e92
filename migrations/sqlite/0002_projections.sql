-- Projections of the log. Each is rebuilt from the log by `consent-ledger rebuild`.

-- How far each projection has applied the log (same transaction as its rows: exactly once).
CREATE TABLE projection_positions (
    name      TEXT PRIMARY KEY,
    position  INTEGER NOT NULL
);

-- Consent facts, bitemporal: valid from `occurred_at`; known from `position` until
-- `retracted_by` (exclusive; NULL = still in force). scope '' = tenant-wide.
CREATE TABLE consent_facts (
    position      INTEGER PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    scope         TEXT    NOT NULL,
    msisdn        TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('opted_out', 'opted_in')),
    occurred_at   TEXT    NOT NULL,
    event_id      TEXT    NOT NULL,
    type          TEXT    NOT NULL,
    keyword       TEXT,
    retracted_by  INTEGER
);
CREATE INDEX consent_facts_lookup
    ON consent_facts (tenant, msisdn, scope, occurred_at, position);

-- Every version of every subaccount's settings; the current one is the latest by position.
CREATE TABLE subaccount_versions (
    position        INTEGER PRIMARY KEY,
    tenant          TEXT    NOT NULL,
    subaccount      TEXT    NOT NULL,
    occurred_at     TEXT    NOT NULL,
    default_region  TEXT,
    mode            TEXT    NOT NULL,
    unknown         TEXT    NOT NULL CHECK (unknown IN ('allow', 'deny')),
    keywords        TEXT    NOT NULL,
    policy_version  INTEGER NOT NULL
);
CREATE INDEX subaccount_versions_lookup
    ON subaccount_versions (tenant, subaccount, occurred_at, position);

CREATE TABLE tenant_versions (
    position     INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    occurred_at  TEXT    NOT NULL,
    revoke_all   INTEGER NOT NULL
);
CREATE INDEX tenant_versions_lookup ON tenant_versions (tenant, position);

-- Review queue: messages flagged for a person, and opt-outs whose subaccount was unresolved.
CREATE TABLE review_items (
    position     INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('flagged', 'unresolved')),
    subaccount   TEXT,
    msisdn       TEXT,
    keyword      TEXT,
    occurred_at  TEXT    NOT NULL,
    recorded_at  TEXT    NOT NULL,
    closed_by    INTEGER,
    closed_how   TEXT
);
CREATE INDEX review_items_open ON review_items (tenant, position) WHERE closed_by IS NULL;
