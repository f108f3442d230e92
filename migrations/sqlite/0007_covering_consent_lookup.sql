-- consent_facts_lookup carries the fact's state and retraction: the decision queries (which skip
-- retracted facts) and the rebuild's one-pass derivation of consent_current read the index alone,
-- never the table row behind each entry.
DROP INDEX consent_facts_lookup;
CREATE INDEX consent_facts_lookup
    ON consent_facts (tenant, msisdn, scope, occurred_at, position, state, retracted_by);
