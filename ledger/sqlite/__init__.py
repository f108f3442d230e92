"""The SQLite adapter of the ledger: the log store, its tree, checkpoints, migrations and
verification reads. The only code of ``ledger`` that speaks SQL or imports ``sqlite3``; driver
errors become the ledger's own errors (``ledger.errors``) here."""
