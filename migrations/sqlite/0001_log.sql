-- The append-only consent log and its erasable evidence.
-- `entry` holds the canonical bytes of the entry document; every other log column is an indexed
-- copy of a field inside those bytes (`consent-ledger verify` checks that they agree).
CREATE TABLE log (
    position     INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    subaccount   TEXT,
    msisdn       TEXT,
    occurred_at  TEXT    NOT NULL,
    recorded_at  TEXT    NOT NULL,
    entry        BLOB    NOT NULL,
    leaf_hash    BLOB    NOT NULL CHECK (length(leaf_hash) = 32),
    UNIQUE (tenant, key)
);
CREATE INDEX log_by_number ON log (tenant, msisdn, position) WHERE msisdn IS NOT NULL;
CREATE INDEX log_by_type ON log (type, position);
CREATE INDEX log_by_recorded ON log (recorded_at, position);

-- Positions are dense and gapless: each new row takes exactly the next position.
CREATE TRIGGER log_dense_positions BEFORE INSERT ON log
WHEN NEW.position IS NOT (SELECT coalesce(max(position), 0) + 1 FROM log)
BEGIN
    SELECT RAISE(ABORT, 'log positions must be dense: insert the next position only');
END;
CREATE TRIGGER log_no_update BEFORE UPDATE ON log
BEGIN
    SELECT RAISE(ABORT, 'log entries are immutable');
END;
CREATE TRIGGER log_no_delete BEFORE DELETE ON log
BEGIN
    SELECT RAISE(ABORT, 'log entries are immutable');
END;

-- Personal data beside the log. Erasure nulls salt and content and keeps the tombstone.
CREATE TABLE evidence (
    position      INTEGER PRIMARY KEY REFERENCES log (position),
    salt          BLOB,
    content       BLOB,
    erased_at     TEXT,
    erase_reason  TEXT,
    CHECK ((salt IS NULL) = (content IS NULL))
);
