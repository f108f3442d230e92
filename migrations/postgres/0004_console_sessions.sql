-- Sessions of the compliance console (api/console): only a SHA-256 of each session token is
-- stored; a session ends at expires_at, on sign-out (deleted), or when its key is revoked
-- (checked on every request). Not part of the log.
CREATE TABLE console_sessions (
    token_sha256  bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    key_id        text  NOT NULL,
    csrf_token    text  NOT NULL,
    created_at    text  NOT NULL COLLATE "C",
    expires_at    text  NOT NULL COLLATE "C"
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
