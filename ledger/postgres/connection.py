"""Opening the ledger's PostgreSQL database: the one place its session settings are chosen.

Guarantees: every connection is in autocommit mode (transactions are explicit), identifies
itself as ``consent-ledger``, and carries the settings that keep a frozen or partitioned node
from holding the log forever: ``lock_timeout`` (a writer waiting longer for the log lock gives
up with ``StoreUnavailable``, which the API answers 503 and 8x8 retries),
``idle_in_transaction_session_timeout`` (the server ends the session of a node that stopped
mid-transaction, releasing its locks) and TCP keepalives (a vanished peer is noticed). Settings
named in the URL's own ``options`` win over these defaults. One planner setting is the
ledger's too: ``random_page_cost=1.1`` (PostgreSQL's default, 4, prices a random page read as
a spinning disk does); the ledger's tables are read by index probes into a working set held in
memory or on SSD, and at 4 the planner answers a bulk check of 10,000 numbers against a
million-entry log with a full scan and sort of ``consent_current`` (about 290 ms under
``EXPLAIN ANALYZE``) instead of 10,000 index probes (about 75 ms). Driver errors meaning "the
database cannot answer now" become ``StoreUnavailable`` here; nothing past the adapter sees a
``psycopg`` error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ledger.errors import StoreUnavailable
from ledger.location import mask_url

LOCK_TIMEOUT = "5s"
IDLE_IN_TRANSACTION_TIMEOUT = "10s"
RANDOM_PAGE_COST = "1.1"
KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
DEFAULT_POOL_SIZE = 4
"""Reading connections per process (plus one writer, one clock and, on the runner, one lease
session): 3 nodes x 2 workers stay far below PostgreSQL's default ``max_connections`` of 100."""
POOL_WAIT_SECONDS = 10.0

Connection = psycopg.Connection[tuple[Any, ...]]
"""A connection of this adapter, for code that passes one along without using it."""


def conninfo(url: str) -> str:
    """``url`` with the ledger's session defaults added (see the module)."""
    params: dict[str, Any] = conninfo_to_dict(url)
    ours = (
        f"-c lock_timeout={LOCK_TIMEOUT} "
        f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT} "
        f"-c random_page_cost={RANDOM_PAGE_COST}"
    )
    params["options"] = f"{ours} {params['options']}" if params.get("options") else ours
    params.setdefault("application_name", "consent-ledger")
    for name, value in KEEPALIVES.items():
        params.setdefault(name, value)
    params.setdefault("connect_timeout", "10")
    return make_conninfo(**params)


def connect(url: str) -> Connection:
    """One autocommit connection to ``url`` (``StoreUnavailable`` when the server cannot be
    reached)."""
    with unavailable_on_driver_error(f"cannot connect to {mask_url(url)}"):
        return psycopg.connect(conninfo(url), autocommit=True)


def pool(url: str, size: int = DEFAULT_POOL_SIZE) -> psycopg_pool.ConnectionPool[Connection]:
    """A bounded pool of ``size`` autocommit connections to ``url`` (opened lazily, one at
    first)."""
    return psycopg_pool.ConnectionPool(
        conninfo(url),
        min_size=1,
        max_size=max(1, size),
        kwargs={"autocommit": True},
        timeout=POOL_WAIT_SECONDS,
        open=True,
        name="consent-ledger",
    )


@contextmanager
def unavailable_on_driver_error(doing: str) -> Iterator[None]:
    """Turn a driver error inside into ``StoreUnavailable`` ("<doing>: <driver message>"):
    the adapter's edge, past which nothing catches ``psycopg.Error``."""
    try:
        yield
    except psycopg_pool.PoolTimeout as exc:
        raise StoreUnavailable(f"{doing}: every database connection stayed busy") from exc
    except psycopg.Error as exc:
        if is_unavailable(exc):
            raise StoreUnavailable(f"{doing}: {_message(exc)}") from exc
        raise


UNAVAILABLE_CLASSES = ("08", "53", "55", "57", "58", "40", "25")
"""SQLSTATE classes meaning "not now" rather than "this request is wrong": connection exceptions,
insufficient resources, object not in prerequisite state (lock not available), operator
intervention (shutdown, cancel), system errors, transaction rollback (serialisation failure,
deadlock), invalid transaction state (a session ended by the server's time-outs)."""


def _message(exc: psycopg.Error) -> str:
    """The driver's message, first line only (never the connection string)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` is a driver error that means "the database cannot answer now"."""
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.QueryCanceled):
        return True
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return True
    return (
        isinstance(exc, psycopg.Error)
        and exc.sqlstate is not None
        and exc.sqlstate[:2] in UNAVAILABLE_CLASSES
    )


def lock_key(conn: Connection, name: str) -> int:
    """The advisory-lock key of ``name`` in the schema ``conn`` uses: two ledgers in two
    schemas of one database never share a lock."""
    row = conn.execute(
        "SELECT hashtextextended(current_schema() || '/consent-ledger/' || %s, 0)", (name,)
    ).fetchone()
    assert row is not None
    return int(row[0])
