"""The PostgreSQL engine assembled: the log store with its projectors, and the ports built on it.

Guarantee: ``open_engine`` is the one place the PostgreSQL adapters are put together; the ledger
asks for an engine (``projections.engine``) and uses its ports, never the parts' classes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ledger.postgres.connection import DEFAULT_POOL_SIZE
from ledger.postgres.store import PgLogStore
from projections.engine import Engine
from projections.postgres.checkpoints import PgCheckpoints
from projections.postgres.image import PgImages
from projections.postgres.projectors import projectors
from projections.postgres.read_model import PgReadModel, PgUnitOfWork
from projections.postgres.rebuild import PgMaintenance


def open_engine(
    url: str, clock: Callable[[], datetime] | None = None, *, pool_size: int | None = None
) -> Engine:
    """The PostgreSQL adapters on the database (schema) at ``url``, migrated if need be. Every
    "now" comes from ``clock`` when given, else from the database's clock; ``pool_size``
    reading connections per process (``DEFAULT_POOL_SIZE`` when ``None``)."""
    store = PgLogStore(url, projectors(), clock, pool_size or DEFAULT_POOL_SIZE)
    return Engine(
        store=store,
        read_model=PgReadModel(store),
        unit_of_work=PgUnitOfWork(store),
        maintenance=PgMaintenance(store),
        checkpoints=PgCheckpoints(store),
        images=PgImages(store),
    )
