-- Sessions of the compliance console (api/console): only a SHA-256 of each session token is
-- stored; a session ends at expires_at, on sign-out (deleted), or when its key is revoked
-- (checked on every request). Not part of the log.
CREATE TABLE console_sessions (
    token_sha256  BLOB PRIMARY KEY CHECK (length(token_sha256) = 32),
    key_id        TEXT NOT NULL,
    csrf_token    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
