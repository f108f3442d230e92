"""Whole-database verification: every entry, its evidence, the Merkle tree and the checkpoints.

Guarantees: ``verify_log`` re-derives everything from the stored entry bytes and reports each
disagreement — an entry whose bytes are not canonical or whose leaf hash, position or indexed
columns disagree with them; a gap in positions; evidence that no longer matches its digest; a
stored tree node that differs from the recomputed tree; a checkpoint whose signature, root or
size does not hold, or that is not consistent with its predecessor. ``first_bad_position`` names
the earliest log position involved.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

import msgspec

from ledger import merkle, tree
from ledger.checkpoint import open_note
from ledger.entries import decode_entry, encode_entry, evidence_matches
from ledger.errors import InvalidInput
from ledger.events import event_type

_COLUMNS = (
    "tenant",
    "key",
    "event_id",
    "type",
    "subaccount",
    "msisdn",
    "occurred_at",
    "recorded_at",
)
PROGRESS_EVERY = 100_000


class Problem(msgspec.Struct, frozen=True):
    """One thing that does not verify, at a log position (or tree size for checkpoints)."""

    position: int
    what: str


class Report(msgspec.Struct, kw_only=True):
    """The outcome of a verification run."""

    entries: int = 0
    evidence_checked: int = 0
    evidence_erased: int = 0
    tree_nodes: int = 0
    checkpoints: int = 0
    problems: list[Problem] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.problems

    @property
    def first_bad_position(self) -> int | None:
        """The earliest position named by a problem."""
        return min((p.position for p in self.problems), default=None)

    def add(self, position: int, what: str) -> None:
        """Record a problem."""
        if len(self.problems) < 1000:
            self.problems.append(Problem(position, what))


def verify_log(
    conn: sqlite3.Connection,
    verifier_key: str | None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Verify the log, evidence, tree and checkpoints on ``conn`` (inside a read snapshot)."""
    report = Report()
    levels = _TreeChecker(conn, report)
    last_recorded = ""
    expected = 1
    columns = ", ".join(f"l.{c}" for c in _COLUMNS)
    for row in conn.execute(
        f"SELECT l.position, l.entry, l.leaf_hash, e.position, e.salt, e.content, {columns} "
        "FROM log l LEFT JOIN evidence e ON e.position = l.position ORDER BY l.position"
    ):
        position, data, stored_hash = row[0], bytes(row[1]), bytes(row[2])
        if position != expected:
            report.add(expected, f"positions jump from {expected - 1} to {position}")
            expected = position
        digest, last_recorded = _check_entry(
            report, position, data, stored_hash, row[6:], last_recorded
        )
        _check_evidence(report, position, digest, row[3] is not None, row[4], row[5])
        levels.add_leaf(position - 1, merkle.leaf_hash(data))
        expected += 1
        report.entries += 1
        if progress and report.entries % PROGRESS_EVERY == 0:
            progress(report.entries)
    levels.finish(report.entries)
    _check_checkpoints(conn, report, verifier_key)
    return report


def _check_entry(
    report: Report,
    position: int,
    data: bytes,
    stored_hash: bytes,
    columns: tuple[object, ...],
    last_recorded: str,
) -> tuple[str | None, str]:
    """Check one entry; returns its evidence digest and the running maximum recorded time."""
    try:
        entry = decode_entry(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        report.add(position, f"entry bytes do not decode: {exc}")
        return None, last_recorded
    if encode_entry(entry) != data:
        report.add(position, "entry bytes are not in canonical form")
    if merkle.leaf_hash(data) != stored_hash:
        report.add(position, "stored leaf hash does not match the entry bytes")
    if entry.position != position:
        report.add(position, f"entry says position {entry.position}")
    if event_type(entry.event) != entry.type:
        report.add(position, "entry type differs from its event's tag")
    for name, value in zip(_COLUMNS, columns, strict=True):
        if getattr(entry, name) != value:
            report.add(position, f"indexed column {name!r} differs from the entry bytes")
    if entry.recorded_at < last_recorded:
        report.add(position, "recorded time goes backwards")
    return entry.evidence_digest, max(entry.recorded_at, last_recorded)


class _TreeChecker:
    """Recomputes perfect subtrees as leaves stream in and compares them with stored nodes."""

    def __init__(self, conn: sqlite3.Connection, report: Report) -> None:
        self.conn, self.report = conn, report
        self.stack: list[bytes] = []  # hashes of the perfect subtrees on the right edge
        self.cursors: dict[int, Iterator[tuple[int, bytes]]] = {}

    def _stored(self, level: int) -> Iterator[tuple[int, bytes]]:
        if level not in self.cursors:
            cur = self.conn.cursor()
            cur.execute("SELECT idx, hash FROM tree_nodes WHERE level = ? ORDER BY idx", (level,))
            self.cursors[level] = ((int(i), bytes(h)) for i, h in cur)
        return self.cursors[level]

    def _compare(self, level: int, index: int, digest: bytes) -> None:
        self.report.tree_nodes += 1
        stored = next(self._stored(level), None)
        if stored is None or stored != (index, digest):
            first = index * (1 << level) + 1
            self.report.add(first, f"stored tree node ({level}, {index}) differs from the log")

    def add_leaf(self, index: int, digest: bytes) -> None:
        level = 0
        self._compare(0, index, digest)
        while index & 1:
            digest = merkle.node_hash(self.stack.pop(), digest)
            level, index = level + 1, index >> 1
            self._compare(level, index, digest)
        self.stack.append(digest)

    def finish(self, size: int) -> None:
        extra = self.conn.execute(
            "SELECT min(idx) FROM tree_nodes WHERE level = 0 AND idx >= ?", (size,)
        ).fetchone()[0]
        if extra is not None:
            self.report.add(
                size + 1,
                f"the tree has leaves beyond the log's {size} entries (entries were removed)",
            )


def _check_evidence(
    report: Report,
    position: int,
    digest: str | None,
    has_row: bool,
    salt: object,
    content: object,
) -> None:
    if digest is None:
        if has_row:
            report.add(position, "evidence stored for an entry that has no evidence digest")
    elif not has_row:
        report.add(position, "evidence row is missing (erasure keeps a tombstone)")
    elif salt is None:
        report.evidence_erased += 1
    elif (
        isinstance(salt, bytes)
        and isinstance(content, bytes)
        and evidence_matches(digest, salt, content)
    ):
        report.evidence_checked += 1
    else:
        report.add(position, "evidence does not match the entry's evidence digest")


def _check_checkpoints(conn: sqlite3.Connection, report: Report, verifier_key: str | None) -> None:
    size = tree.tree_size(conn) if report.entries else 0
    previous: tuple[int, bytes] | None = None
    rows = conn.execute("SELECT size, root, note FROM checkpoints ORDER BY size").fetchall()
    for cp_size, root, note in rows:
        report.checkpoints += 1
        where = min(cp_size, report.entries + 1) or 1
        if verifier_key is not None:
            try:
                cp = open_note(note, verifier_key)
            except InvalidInput as exc:
                report.add(where, f"checkpoint {cp_size}: {exc}")
                continue
            if (cp.size, cp.root) != (cp_size, bytes(root)):
                report.add(where, f"checkpoint {cp_size}: columns differ from the signed note")
        if cp_size > report.entries or cp_size > size:
            report.add(
                where,
                f"checkpoint {cp_size} covers entries the log no longer has "
                f"(the log has {report.entries})",
            )
            continue
        if tree.root(conn, cp_size) != bytes(root):
            report.add(where, f"checkpoint {cp_size}: root differs from the log's tree")
        if previous is not None and previous[0] > 0:
            proof = tree.consistency_proof(conn, previous[0], cp_size)
            if not merkle.verify_consistency(previous[0], cp_size, previous[1], bytes(root), proof):
                report.add(where, f"checkpoint {cp_size} is not consistent with {previous[0]}")
        previous = (cp_size, bytes(root))
