-- The outbox of replies and blacklist pushes (migration 0011 of SQLite; projections.eightxeight
-- .outbox says what the rows mean), and the review kind 'reply'.
CREATE TABLE replies (
    position          bigint  NOT NULL,
    action            text    NOT NULL COLLATE "C" CHECK (action IN ('reply', 'blacklist')),
    tenant            text    NOT NULL COLLATE "C",
    kind              text    COLLATE "C",
    subaccount        text    COLLATE "C",
    msisdn            text    NOT NULL COLLATE "C",
    event_id          text    NOT NULL COLLATE "C",
    deadline          text    COLLATE "C",
    recorded_at       text    NOT NULL COLLATE "C",
    state             text    NOT NULL COLLATE "C" CHECK (state IN ('pending', 'attempted',
                          'deferred', 'sent', 'failed', 'uncertain', 'expired')),
    attempts          integer NOT NULL,
    retry_at          text    COLLATE "C",
    outcome_position  bigint,
    umid              text,
    code              text,
    PRIMARY KEY (position, action)
);
CREATE INDEX replies_open ON replies (position) WHERE state IN ('pending', 'attempted', 'deferred');
CREATE INDEX replies_by_message ON replies (event_id);

ALTER TABLE review_items DROP CONSTRAINT review_items_kind_check;
ALTER TABLE review_items ADD CONSTRAINT review_items_kind_check
    CHECK (kind IN ('flagged', 'unresolved', 'check', 'reply'));

-- No entry before this migration asks for a reply: the empty outbox is already up to date.
INSERT INTO projection_positions (name, position)
    SELECT 'outbox', position FROM projection_positions WHERE name = 'consent';
