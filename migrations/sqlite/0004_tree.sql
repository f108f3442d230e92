-- Tamper evidence: the Merkle tree's completed perfect subtrees and the signed checkpoints.

-- Node (level, idx) is the RFC 9162 hash of leaves [idx * 2^level, (idx + 1) * 2^level);
-- level 0 holds the leaf hashes. Written in the append transaction; never changed.
CREATE TABLE tree_nodes (
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hash   BLOB    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TRIGGER tree_nodes_no_update BEFORE UPDATE ON tree_nodes
BEGIN
    SELECT RAISE(ABORT, 'tree nodes are immutable');
END;
CREATE TRIGGER tree_nodes_no_delete BEFORE DELETE ON tree_nodes
BEGIN
    SELECT RAISE(ABORT, 'tree nodes are immutable');
END;

-- Every signed checkpoint, kept forever; each is consistent with its predecessor.
CREATE TABLE checkpoints (
    size       INTEGER PRIMARY KEY,
    root       BLOB    NOT NULL CHECK (length(root) = 32),
    note       TEXT    NOT NULL,
    signed_at  TEXT    NOT NULL
);
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are immutable');
END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are immutable');
END;
