"""The engines one benchmark run measures: where each one's databases are, and their clean-up.

``--db`` values (each may be given more than once, one engine each):

- ``sqlite`` (the default): a SQLite log in the run's temporary directory, removed at the end;
- a path or ``sqlite:///PATH``: the SQLite log is built there and kept (reused next time);
- ``postgresql://…``: a PostgreSQL server and database. Every database the run needs there (the
  log, the append runs', the eventsourcing recorder's) is a fresh schema ``bench_<random>…``
  named in the URL's ``search_path``, and every one of them is dropped at the end, so runs
  never collide and leave nothing behind. A PostgreSQL store signs checkpoints only with a key
  it is given: the run makes one (``consent-ledger signing-key new``) in its temporary directory.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ledger.location import StoreLocation, parse_location

CLI = Path(sys.executable).with_name("consent-ledger")
NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
SERVER_SETTINGS = (
    "autovacuum", "fsync", "synchronous_commit", "wal_sync_method", "shared_buffers",
    "max_connections", "random_page_cost", "max_parallel_workers_per_gather", "jit",
)  # fmt: skip


def schema_url(base: str, schema: str, application: str | None = None) -> str:
    """``base`` with ``search_path`` set to ``schema`` (other options kept), and the sessions'
    ``application_name`` when given."""
    parts = urlsplit(base)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    ours = f"-csearch_path={schema}"
    query["options"] = f"{query['options']} {ours}" if query.get("options") else ours
    if application:
        query["application_name"] = application
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@dataclass
class Schemas:
    """Fresh schemas on one PostgreSQL server, every one dropped by ``drop_all``."""

    server: str
    prefix: str = field(default_factory=lambda: f"bench_{uuid.uuid4().hex[:8]}")
    made: list[str] = field(default_factory=list)

    def name(self, purpose: str) -> str:
        """The schema ``new(purpose)`` makes."""
        return f"{self.prefix}_{purpose}"

    def new(self, purpose: str) -> str:
        """A new empty schema ``<prefix>_<purpose>``; its URL (whose sessions are named
        ``<prefix>``, see ``idle``)."""
        name = self.name(purpose)
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        self.made.append(name)
        return schema_url(self.server, name, self.prefix)

    def idle(self, limit: float = 120.0) -> float:
        """Wait until no session of this run runs a statement (at most ``limit`` seconds): a
        query a server still runs for a request wrk gave up on must not land in the next
        load's figures (the server's own CPU does not show it). Seconds waited."""
        started = time.monotonic()
        with psycopg.connect(self.server, autocommit=True) as conn:
            while time.monotonic() - started < limit:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                    "AND state = 'active' AND pid <> pg_backend_pid()",
                    (self.prefix,),
                ).fetchone()
                if row is None or row[0] == 0:
                    break
                time.sleep(0.1)
        return time.monotonic() - started

    def vacuum(self, purpose: str) -> float:
        """``VACUUM (ANALYZE)`` every table of schema ``purpose`` (what autovacuum does after a
        bulk load, when it runs: hint bits, the visibility map, planner statistics); seconds."""
        started = time.monotonic()
        with psycopg.connect(self.server, autocommit=True) as conn:
            names = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.name(purpose),)
            ).fetchall()
            for (table,) in names:
                target = sql.Identifier(self.name(purpose), table)
                conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(target))
        return time.monotonic() - started

    def settings(self) -> dict[str, str]:
        """The server's settings that bear on the figures."""
        with psycopg.connect(self.server, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                (list(SERVER_SETTINGS),),
            ).fetchall()
            version = conn.execute("SHOW server_version").fetchone()
        return {"server_version": str(version[0] if version else "")} | {
            str(n): str(v) for n, v in rows
        }

    def drop_all(self) -> None:
        """Drop every schema made here (and any rebuild's side schema beside one)."""
        if not self.made:
            return
        with psycopg.connect(self.server, autocommit=True) as conn:
            for name in self.made:
                for schema in (name, f"{name}_rebuild"):
                    conn.execute(
                        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                    )
        self.made.clear()


@dataclass
class Target:
    """One engine of the run: the log's location as ``--db`` takes it, and what it needs."""

    engine: str
    """``sqlite`` or ``postgresql``."""
    log: str
    """The benchmark log's location (a path or a URL)."""
    schemas: Schemas | None = None
    """PostgreSQL: the server's schemas this run made."""
    signing_key: Path | None = None
    """PostgreSQL: the checkpoint signing key file (a URL store never makes one itself)."""
    kept: bool = False
    """SQLite: the log is the user's path, kept and reused."""

    @property
    def name(self) -> str:
        """The engine's name for people."""
        return NAMES[self.engine]

    @property
    def location(self) -> StoreLocation:
        """The log's parsed location."""
        return parse_location(self.log)

    def key_options(self) -> list[str]:
        """``--signing-key FILE`` for commands on a PostgreSQL store; nothing for SQLite."""
        return ["--signing-key", str(self.signing_key)] if self.signing_key else []

    def scratch(self, purpose: str, work: Path) -> str:
        """A new empty store of this engine for one measurement (an append run)."""
        if self.schemas is not None:
            return self.schemas.new(purpose)
        return str(work / f"{purpose}-{uuid.uuid4().hex[:6]}.db")

    def idle(self) -> None:
        """Wait until the database runs nothing for this run (PostgreSQL; see ``Schemas``)."""
        if self.schemas is not None:
            self.schemas.idle()

    def close(self) -> None:
        """Drop whatever this run made on a server."""
        if self.schemas is not None:
            self.schemas.drop_all()


def targets(values: list[str], work: Path, out: list[Target]) -> None:
    """Add the run's engines from the ``--db`` values (see the module) to ``out``, in the order
    given (each as soon as it is made: the caller closes what was made should one fail)."""
    values = values or ["sqlite"]
    engines = ["sqlite" if v == "sqlite" else parse_location(v).engine for v in values]
    if len(set(engines)) != len(engines):
        raise SystemExit("bench: give at most one --db per engine")
    for i, value in enumerate(values):
        if value == "sqlite":
            out.append(Target("sqlite", str(work / f"ledger-{i}.db")))
            continue
        where = parse_location(value)
        if where.engine == "sqlite":
            assert where.path is not None
            out.append(Target("sqlite", str(where.path), kept=True))
            continue
        assert where.url is not None
        with psycopg.connect(where.url, connect_timeout=10) as conn:
            conn.execute("SELECT 1")  # fail now, not after the SQLite half of the run
        key = work / f"signing-{i}.key"
        subprocess.run(
            [str(CLI), "signing-key", "new", "--out", str(key)], check=True, capture_output=True
        )
        target = Target("postgresql", "", Schemas(where.url), key)
        out.append(target)
        assert target.schemas is not None
        target.log = target.schemas.new("log")
