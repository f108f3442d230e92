"""The SQLite adapter of the projections: projectors, the read model, the unit of work, rebuild
and shadow replays. Every SQL statement of ``projections`` lives in this package."""
