"""The PostgreSQL adapter of the log store (the scale-out store: many nodes, one log)."""
