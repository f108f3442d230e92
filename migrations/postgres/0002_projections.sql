-- Projections of the log (projections.postgres): pure functions of the log, rebuilt at will.

CREATE TABLE projection_positions (
    name      text    PRIMARY KEY,
    position  bigint  NOT NULL
);

CREATE TABLE consent_facts (
    position      bigint  PRIMARY KEY,
    tenant        text    NOT NULL COLLATE "C",
    scope         text    NOT NULL COLLATE "C",
    msisdn        text    NOT NULL COLLATE "C",
    state         text    NOT NULL CHECK (state IN ('opted_out', 'opted_in')),
    occurred_at   text    NOT NULL COLLATE "C",
    event_id      text    NOT NULL,
    type          text    NOT NULL,
    keyword       text,
    retracted_by  bigint
);
CREATE INDEX consent_facts_lookup
    ON consent_facts (tenant, msisdn, scope, occurred_at, position)
    INCLUDE (state, retracted_by);

CREATE TABLE consent_current (
    tenant       text    NOT NULL COLLATE "C",
    msisdn       text    NOT NULL COLLATE "C",
    scope        text    NOT NULL COLLATE "C",
    position     bigint  NOT NULL,
    occurred_at  text    NOT NULL COLLATE "C",
    state        text    NOT NULL CHECK (state IN ('opted_out', 'opted_in')),
    PRIMARY KEY (tenant, msisdn, scope)
);

CREATE TABLE subaccount_versions (
    position        bigint   PRIMARY KEY,
    tenant          text     NOT NULL COLLATE "C",
    subaccount      text     NOT NULL COLLATE "C",
    occurred_at     text     NOT NULL COLLATE "C",
    default_region  text,
    mode            text     NOT NULL,
    unknown         text     NOT NULL CHECK (unknown IN ('allow', 'deny')),
    keywords        text     NOT NULL,
    policy_version  integer  NOT NULL
);
CREATE INDEX subaccount_versions_lookup
    ON subaccount_versions (tenant, subaccount, occurred_at, position);

CREATE TABLE tenant_versions (
    position        bigint   PRIMARY KEY,
    tenant          text     NOT NULL COLLATE "C",
    occurred_at     text     NOT NULL COLLATE "C",
    revoke_all      boolean  NOT NULL,
    default_region  text
);
CREATE INDEX tenant_versions_lookup ON tenant_versions (tenant, position);

CREATE TABLE review_items (
    position     bigint  PRIMARY KEY,
    tenant       text    NOT NULL COLLATE "C",
    kind         text    NOT NULL CHECK (kind IN ('flagged', 'unresolved', 'check')),
    subaccount   text    COLLATE "C",
    msisdn       text    COLLATE "C",
    keyword      text,
    occurred_at  text    NOT NULL COLLATE "C",
    recorded_at  text    NOT NULL COLLATE "C",
    closed_by    bigint,
    closed_how   text
);
CREATE INDEX review_items_open ON review_items (tenant, position) WHERE closed_by IS NULL;
