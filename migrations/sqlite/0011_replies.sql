-- Replies through 8x8's SMS API and pushes to 8x8's account blacklist (the outbox): one row per
-- entry that asks for one (action 'reply': the entry's `reply` intent; 'blacklist': a tenant-wide
-- opt-out of a tenant that syncs its blacklist), its state kept in step with the `reply.*`
-- entries that follow it. A projection like the others: rebuilt from the log.
CREATE TABLE replies (
    position          INTEGER NOT NULL,
    action            TEXT    NOT NULL CHECK (action IN ('reply', 'blacklist')),
    tenant            TEXT    NOT NULL,
    kind              TEXT,
    subaccount        TEXT,
    msisdn            TEXT    NOT NULL,
    event_id          TEXT    NOT NULL,
    deadline          TEXT,
    recorded_at       TEXT    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'attempted', 'deferred',
                          'sent', 'failed', 'uncertain', 'expired')),
    attempts          INTEGER NOT NULL,
    retry_at          TEXT,
    outcome_position  INTEGER,
    umid              TEXT,
    code              TEXT,
    PRIMARY KEY (position, action)
);
CREATE INDEX replies_open ON replies (position) WHERE state IN ('pending', 'attempted', 'deferred');
CREATE INDEX replies_by_message ON replies (event_id);

-- Review items gain the kind 'reply': a reply whose outcome is unknown (never sent again).
CREATE TABLE review_items_new (
    position     INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('flagged', 'unresolved', 'check', 'reply')),
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

-- No entry before this migration asks for a reply: the empty outbox is already up to date.
INSERT INTO projection_positions (name, position)
    SELECT 'outbox', position FROM projection_positions WHERE name = 'consent';
