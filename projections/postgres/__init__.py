"""The PostgreSQL adapter of the projections: projectors, the read model, the unit of work,
checkpoint signing, rebuild beside the live tables and read-only verification. Every SQL
statement of ``projections`` for PostgreSQL lives in this package."""
