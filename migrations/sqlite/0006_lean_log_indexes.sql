-- Fewer index pages written per append (each index an entry touches is one more page in the
-- commit's WAL write and fsync).

-- "The last position recorded at or before a time" is a binary search over positions
-- (recorded_at never decreases with position: the store guarantees it, `verify` checks it), so
-- no index by recorded time is needed.
DROP INDEX log_by_recorded;

-- Searches by type are for the rare entry types only (retractions, review resolutions,
-- configuration). The four high-volume types stay out of the index; a query uses it by repeating
-- this WHERE clause verbatim (ledger.sqlite_store.RARE_TYPES).
DROP INDEX log_by_type;
CREATE INDEX log_by_rare_type ON log (type, position)
WHERE type NOT IN ('consent.revoked', 'consent.granted', 'help.requested', 'review.flagged');
