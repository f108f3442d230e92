"""Schema migrations: numbered SQL files shipped per engine (``migrations/<engine>/``), applied
in order.

Guarantees (every engine's migrator gives them): each file is applied once, inside one
transaction together with its record (name, SHA-256 checksum of its bytes); concurrent starters
never apply a file twice; a database whose applied file has since changed (or that has applied
a file this build does not ship) is refused with ``MigrationError`` naming the file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from ledger.errors import MigrationError

_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


@dataclass(frozen=True)
class Migration:
    """One shipped SQL file."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 hex of the file's bytes."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def shipped_migrations(engine: str = "sqlite") -> list[Migration]:
    """The SQL files shipped for ``engine`` (the ``migrations`` package's folder of that name),
    in number order."""
    folder = resources.files("migrations").joinpath(engine)
    files = [f for f in folder.iterdir() if _NAME.fullmatch(f.name)]
    return [Migration(f.name, f.read_text("utf-8")) for f in sorted(files, key=lambda f: f.name)]


def unapplied(applied: Mapping[str, str], shipped: list[Migration]) -> list[Migration]:
    """The migrations of ``shipped`` not in ``applied`` (name → checksum, as the database
    records them); ``MigrationError`` on an applied file that changed or is not shipped."""
    names = {m.name for m in shipped}
    for name in applied:
        if name not in names:
            raise MigrationError(f"database has migration {name} that this build does not ship")
    for m in shipped:
        if m.name in applied and applied[m.name] != m.checksum:
            raise MigrationError(
                f"migration {m.name} was changed after it was applied "
                f"(checksum {applied[m.name][:12]}… in the database, {m.checksum[:12]}… shipped)"
            )
    return [m for m in shipped if m.name not in applied]
