-- Tree nodes stored in the order appends complete them. Keyed by node = leaf * 64 + level, where
-- leaf is the last leaf a node covers, ((idx + 1) << level) - 1, the nodes one append completes
-- are neighbours at the right edge of a rowid table: about one page written per append, instead
-- of one page per level touched (the (level, idx) key of 0004 spread them over a page per level).
-- Same rows, same meaning; level and idx stay for every query that names a node.
CREATE TABLE tree_nodes_by_leaf (
    node   INTEGER PRIMARY KEY,
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hash   BLOB    NOT NULL CHECK (length(hash) = 32),
    CHECK (level BETWEEN 0 AND 63 AND idx >= 0
           AND node = (((((idx + 1) << level) - 1) << 6) | level))
);
INSERT INTO tree_nodes_by_leaf (node, level, idx, hash)
SELECT (((((idx + 1) << level) - 1) << 6) | level) AS node, level, idx, hash FROM tree_nodes
ORDER BY node;
DROP TABLE tree_nodes;
ALTER TABLE tree_nodes_by_leaf RENAME TO tree_nodes;
CREATE TRIGGER tree_nodes_no_update BEFORE UPDATE ON tree_nodes
BEGIN
    SELECT RAISE(ABORT, 'tree nodes are immutable');
END;
CREATE TRIGGER tree_nodes_no_delete BEFORE DELETE ON tree_nodes
BEGIN
    SELECT RAISE(ABORT, 'tree nodes are immutable');
END;
