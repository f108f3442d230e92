"""PostgreSQL for tests: the server, a fresh schema per test, and the rule when none answers.

The server is ``$CONSENT_LEDGER_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``,
a server this project's machines, CI's included, start by themselves). Each test gets a schema
of its own (``fresh_schema``: a URL whose ``search_path`` names it), dropped afterwards. When no
server answers, a PostgreSQL test is skipped with the reason shown — except under CI
(``CI=true``), where it fails: CI must never pass without having run them.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

ENV = "CONSENT_LEDGER_TEST_PG"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    """The test server's URL (no schema chosen)."""
    return os.environ.get(ENV) or DEFAULT_URL


@lru_cache(maxsize=1)
def _unreachable() -> str | None:
    """Why the test server cannot be used, or ``None`` when it answers (asked once per run)."""
    try:
        with psycopg.connect(server_url(), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()
        return f"no PostgreSQL server answers at ${ENV} ({first[0] if first else exc!r})"
    return None


def require_server() -> None:
    """Skip the calling test when no server answers (fail it under ``CI=true``)."""
    reason = _unreachable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the PostgreSQL tests")
    pytest.skip(reason)


def schema_url(schema: str, base: str | None = None) -> str:
    """``base`` (the server's URL) with ``search_path`` set to ``schema`` (other options kept)."""
    parts = urlsplit(base or server_url())
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    ours = f"-csearch_path={schema}"
    query["options"] = f"{query['options']} {ours}" if query.get("options") else ours
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def create_schema(name: str | None = None) -> tuple[str, str]:
    """A new empty schema (named ``name``, else ``t_<random>``) and its URL; the server must
    answer (``require_server``)."""
    schema = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return schema, schema_url(schema)


def drop_schema(schema: str) -> None:
    """Drop ``schema`` and everything in it (a rebuild's side schema too, if one was left)."""
    with psycopg.connect(server_url(), autocommit=True) as conn:
        for name in (schema, f"{schema}_rebuild"):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@contextmanager
def fresh_schema() -> Iterator[str]:
    """The URL of a new schema of its own, dropped afterwards (skips or fails the test when no
    server answers, see the module)."""
    require_server()
    schema, url = create_schema()
    try:
        yield url
    finally:
        drop_schema(schema)


# The relations of a schema, with the TOAST tables that hold their long values out of line.
_RELATIONS = (
    "SELECT current_setting('data_directory'), pg_relation_filepath(c.oid) FROM pg_class c "
    "WHERE (c.relnamespace = current_schema()::regnamespace OR c.oid IN ("
    " SELECT reltoastrelid FROM pg_class WHERE relnamespace = current_schema()::regnamespace)) "
    "AND c.relkind IN ('r', 't', 'i', 'm')"
)


def data_files(url: str) -> list[Path]:
    """The files on disk of every table, TOAST table and index of the schema ``url`` names,
    written out first (``CHECKPOINT``): what a search of "the database files" reads. Skips the
    test, saying why, when the server's files cannot be read from here (another machine, or
    not the superuser)."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
            rows = conn.execute(_RELATIONS).fetchall()
    except psycopg.Error as exc:
        pytest.skip(f"cannot locate the server's data files: {str(exc).strip()}")
    files = []
    for directory, relative in rows:
        if relative is None:
            continue
        first = Path(directory) / relative
        if not os.access(first.parent, os.R_OK):
            pytest.skip(f"the server's data files are not readable here ({first.parent})")
        files.append(first)
        files.extend(sorted(first.parent.glob(first.name + ".[0-9]*")))  # 1 GB segments
    return files


def file_bytes(files: list[Path]) -> bytes:
    """Everything ``files`` hold now (a file gone counts as empty)."""
    return b"".join(f.read_bytes() if f.is_file() else b"" for f in files)


def scrub_when_free(store: object, seconds: float = 60) -> None:
    """``store.scrub()`` (a ``LogStore``), run again while it answers ``StoreUnavailable``: on
    PostgreSQL a session of another test run on the shared server may hold a snapshot older
    than the erasure for a while (the port says: run it again)."""
    from ledger.errors import StoreUnavailable

    deadline = time.monotonic() + seconds
    while True:
        try:
            store.scrub()  # type: ignore[attr-defined]
            return
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
