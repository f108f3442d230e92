-- The one checkpoint verifier key of this log, stored by the first signing (a signer with
-- another key is refused: one key per log).
CREATE TABLE signer (
    one           INTEGER PRIMARY KEY CHECK (one = 1),
    verifier_key  TEXT    NOT NULL,
    recorded_at   TEXT    NOT NULL
);
CREATE TRIGGER signer_no_update BEFORE UPDATE ON signer
BEGIN
    SELECT RAISE(ABORT, 'the signer is immutable');
END;
CREATE TRIGGER signer_no_delete BEFORE DELETE ON signer
BEGIN
    SELECT RAISE(ABORT, 'the signer is immutable');
END;
