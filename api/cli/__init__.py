"""The ``consent-ledger`` command line: one module per command group (``records``, ``serve``,
``keys``, ``log``, ``evidence``), what they share in ``common``, the parser and ``main`` in
``program``.

Guarantees: every command that touches the database takes ``--db`` (default
``$CONSENT_LEDGER_DB``, then ``~/.local/share/consent-ledger/ledger.db``) and ``--tenant``
(default ``default``); output is JSON on stdout (``keys create`` prints the new key alone); an
error prints one line on stderr and exits non-zero, having changed nothing.
"""

from api.cli.program import main

__all__ = ["main"]
