-- The log, its evidence, Merkle tree, checkpoints, keys and quarantine (PostgreSQL).
-- Times are canonical RFC 3339 text (UTC, microseconds): compared with COLLATE "C", byte order
-- is time order. Immutability is enforced here, not only by the application: the log, tree
-- nodes and checkpoints refuse UPDATE, DELETE and TRUNCATE; evidence may only be erased.

CREATE TABLE log (
    position     bigint  PRIMARY KEY,
    tenant       text    NOT NULL COLLATE "C",
    key          text    NOT NULL COLLATE "C",
    event_id     text    NOT NULL,
    type         text    NOT NULL COLLATE "C",
    subaccount   text    COLLATE "C",
    msisdn       text    COLLATE "C",
    occurred_at  text    NOT NULL COLLATE "C",
    recorded_at  text    NOT NULL COLLATE "C",
    entry        bytea   NOT NULL,
    leaf_hash    bytea   NOT NULL CHECK (length(leaf_hash) = 32),
    UNIQUE (tenant, key)
);
CREATE INDEX log_by_number ON log (tenant, msisdn, position) WHERE msisdn IS NOT NULL;
CREATE INDEX log_by_rare_type ON log (type, position)
    WHERE type NOT IN ('consent.revoked', 'consent.granted', 'help.requested', 'review.flagged');

CREATE FUNCTION consent_ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE FUNCTION consent_ledger_dense_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.position IS DISTINCT FROM
       (SELECT coalesce(max(position), 0) + 1 FROM log) THEN
        RAISE EXCEPTION 'log positions must be dense: insert the next position only'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER log_dense_positions BEFORE INSERT ON log
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_dense_position();
CREATE TRIGGER log_immutable BEFORE UPDATE OR DELETE ON log
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_immutable();
CREATE TRIGGER log_no_truncate BEFORE TRUNCATE ON log
    FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger_immutable();

CREATE TABLE evidence (
    position      bigint  PRIMARY KEY REFERENCES log (position),
    salt          bytea,
    content       bytea,
    erased_at     text    COLLATE "C",
    erase_reason  text,
    CHECK ((salt IS NULL) = (content IS NULL))
);

-- Evidence is personal data: it may be erased (salt and content to NULL, with when and why),
-- never changed otherwise, deleted or truncated.
CREATE FUNCTION consent_ledger_erase_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.position IS DISTINCT FROM OLD.position OR OLD.erased_at IS NOT NULL
       OR NEW.salt IS NOT NULL OR NEW.content IS NOT NULL OR NEW.erased_at IS NULL THEN
        RAISE EXCEPTION 'evidence may only be erased'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER evidence_erase_only BEFORE UPDATE ON evidence
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_erase_only();
CREATE TRIGGER evidence_no_delete BEFORE DELETE ON evidence
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_immutable();
CREATE TRIGGER evidence_no_truncate BEFORE TRUNCATE ON evidence
    FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger_immutable();

-- RFC 9162 tree nodes, keyed by the last leaf they cover, then the level (ledger.tree).
CREATE TABLE tree_nodes (
    node   bigint   PRIMARY KEY,
    level  integer  NOT NULL,
    idx    bigint   NOT NULL,
    hash   bytea    NOT NULL CHECK (length(hash) = 32),
    CHECK (level BETWEEN 0 AND 63 AND idx >= 0
           AND node = (((((idx + 1) << level) - 1) << 6) | level))
);
CREATE TRIGGER tree_nodes_immutable BEFORE UPDATE OR DELETE ON tree_nodes
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_immutable();
CREATE TRIGGER tree_nodes_no_truncate BEFORE TRUNCATE ON tree_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger_immutable();

CREATE TABLE checkpoints (
    size       bigint  PRIMARY KEY,
    root       bytea   NOT NULL CHECK (length(root) = 32),
    note       text    NOT NULL,
    signed_at  text    NOT NULL COLLATE "C"
);
CREATE TRIGGER checkpoints_immutable BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_immutable();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger_immutable();

-- The one checkpoint verifier key of this log, stored by the first node that signs.
CREATE TABLE signer (
    one           boolean PRIMARY KEY DEFAULT true CHECK (one),
    verifier_key  text    NOT NULL,
    recorded_at   text    NOT NULL COLLATE "C"
);
CREATE TRIGGER signer_immutable BEFORE UPDATE OR DELETE ON signer
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_immutable();

CREATE TABLE api_keys (
    id             text   PRIMARY KEY,
    tenant         text,
    scopes         text   NOT NULL,
    secret_sha256  bytea  NOT NULL CHECK (length(secret_sha256) = 32),
    label          text,
    created_at     text   NOT NULL COLLATE "C",
    revoked_at     text   COLLATE "C"
);

CREATE TABLE quarantine (
    id            bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        text    NOT NULL COLLATE "C",
    received_at   text    NOT NULL COLLATE "C",
    reason        text    NOT NULL,
    content_type  text,
    body          bytea   NOT NULL,
    remote_addr   text,
    request_id    text,
    body_length   bigint,
    body_sha256   text
);
CREATE INDEX quarantine_by_tenant ON quarantine (tenant, id);
