-- API keys (managed by the CLI only) and the webhook quarantine.

-- Only a SHA-256 of each secret is stored. tenant NULL = an operator (deployment-wide) key.
CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    tenant         TEXT,
    scopes         TEXT NOT NULL,
    secret_sha256  BLOB NOT NULL CHECK (length(secret_sha256) = 32),
    label          TEXT,
    created_at     TEXT NOT NULL,
    revoked_at     TEXT
);

-- Webhook bodies that could not be understood: kept with the reason, never answered 4XX.
-- Personal data (raw bodies); not part of the log.
CREATE TABLE quarantine (
    id            INTEGER PRIMARY KEY,
    tenant        TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    reason        TEXT NOT NULL,
    content_type  TEXT,
    body          BLOB NOT NULL,
    remote_addr   TEXT,
    request_id    TEXT
);
CREATE INDEX quarantine_by_tenant ON quarantine (tenant, id);
