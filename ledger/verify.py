"""Whole-database verification: every entry, its evidence, the Merkle tree and the checkpoints.

Guarantees: ``verify_log`` re-derives everything from the stored entry bytes and reports each
disagreement — an entry whose bytes do not decode or are not canonical, whose stored leaf hash,
position, type or indexed columns disagree with them, or whose recorded time goes backwards; a
gap in positions; evidence that no longer matches its digest, is missing, or has no entry; a
stored tree node that is missing, extra or differs from the tree recomputed from the entry bytes;
a checkpoint whose signature does not verify with the verifier key, whose columns differ from
its signed note, that covers entries the log no longer has, whose root differs from the
recomputed tree, or that is not consistent with its predecessor. The stored tree is never
trusted: roots and consistency proofs for checkpoints come from the recomputed tree.

Every problem names a log position: the entry's for entry and evidence problems; for a stored
tree node that is missing or differs, the first position it covers (a node that differs only
because a node below it does is not reported again, so an edited leaf is named by its own
position); for a node beyond the log, the first missing position; for a checkpoint, its tree
size (the message names the range of entries it vouches for since the previous one).
``first_bad_position`` is the earliest.

Cost: one pass over the entries (each decoded once; ``each_batch`` lets a caller reuse them),
then one pass over the stored tree and a comparison of whole levels at once; memory holds the
recomputed tree and the stored one (about 64 bytes per entry each).
"""

from __future__ import annotations

import hashlib
from array import array
from binascii import b2a_base64
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import msgspec

from ledger import merkle
from ledger.checkpoint import open_note
from ledger.entries import Entry, encode_entry
from ledger.errors import InvalidInput
from ledger.events import EVENT_TYPES, event_type
from ledger.store import StoredEntry

INDEXED_COLUMNS = (  # the entry fields a store keeps beside the bytes, in ``EntryRow`` order
    "tenant",
    "key",
    "event_id",
    "type",
    "subaccount",
    "msisdn",
    "occurred_at",
    "recorded_at",
)
BATCH = 20_000
"""Entries read (and handed to ``each_batch``) per query."""
MAX_PROBLEMS = 1000
"""Problems kept in a report (the count of all is in ``Report.problem_count``)."""

Progress = Callable[[str, int, int], None]
"""``(phase, done, total)``: phases ``entries`` (done/total entries), ``tree`` (levels),
``checkpoints``."""
Batch = Callable[[list[tuple[StoredEntry, Entry]]], None]
"""Receives each batch of entries that decoded, in position order (e.g. to replay projections)."""


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
    signatures_checked: bool = False
    """Whether checkpoint signatures were checked (a verifier key was given)."""
    problem_count: int = 0
    problems: list[Problem] = msgspec.field(default_factory=list)
    first_bad_position: int | None = None
    """The earliest position named by any problem (kept even past ``MAX_PROBLEMS``)."""

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return self.problem_count == 0

    def add(self, position: int, what: str) -> None:
        """Record a problem (the first ``MAX_PROBLEMS``, and always the earliest one)."""
        self.problem_count += 1
        earliest = self.first_bad_position is None or position < self.first_bad_position
        if earliest:
            self.first_bad_position = position
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(position, what))
        elif earliest:
            self.problems[-1] = Problem(position, what)


class VerifySource(Protocol):
    """What verification reads from a store, all inside one read transaction. The store hands
    over what it keeps, unchecked: every check is made here."""

    def head(self) -> int:
        """The newest log position (0 for an empty log)."""
        ...

    def entries_after(self, position: int, limit: int) -> list[EntryRow]:
        """Up to ``limit`` entries after ``position``, in position order, with their evidence."""
        ...

    def orphan_evidence(self) -> int | None:
        """The first position that has evidence but no entry, if any."""
        ...

    def tree_nodes(self) -> Iterable[tuple[int, int, bytes]]:
        """Every stored tree node as (level, index, hash); within a level in index order."""
        ...

    def checkpoints(self) -> list[tuple[int, bytes, str]]:
        """Every stored checkpoint as (size, root, signed note), by size."""
        ...


EntryRow = tuple[Any, ...]
"""One entry as stored: position, entry bytes, stored leaf hash, the indexed columns (tenant,
key, event_id, type, subaccount, msisdn, occurred_at, recorded_at), whether an evidence row
exists, its salt and its content (those three from the evidence table)."""


def verify_log(
    source: VerifySource,
    verifier_key: str | None,
    progress: Progress | None = None,
    each_batch: Batch | None = None,
) -> Report:
    """Verify the log, evidence, tree and checkpoints ``source`` reads (in one transaction).

    Without ``verifier_key`` checkpoint signatures are not checked (``signatures_checked`` is
    False); everything else is.
    """
    report = Report(signatures_checked=verifier_key is not None)
    total = source.head()
    leaves = _check_entries(source, report, total, progress, each_batch)
    levels = _check_tree(source, report, leaves, progress)
    _check_checkpoints(source, report, verifier_key, levels, progress)
    return report


# -- entries and evidence -----------------------------------------------------------------------


class _Scan:
    """State carried from one entry to the next."""

    def __init__(self) -> None:
        self.expected = 1
        self.last_recorded = ""
        self.leaves = bytearray()


def _check_entries(
    source: VerifySource,
    report: Report,
    total: int,
    progress: Progress | None,
    each_batch: Batch | None,
) -> bytes:
    """Check every entry and its evidence; returns the concatenated recomputed leaf hashes."""
    scan = _Scan()
    last = 0
    while rows := source.entries_after(last, BATCH):
        decoded = _check_rows(report, rows, scan)
        if each_batch is not None and decoded:
            each_batch(decoded)
        last = rows[-1][0]
        report.entries += len(rows)
        if progress:
            progress("entries", report.entries, total)
    orphan = source.orphan_evidence()
    if orphan is not None:
        report.add(orphan, "evidence is stored for a position the log does not have")
    return bytes(scan.leaves)


_decode = msgspec.json.Decoder(Entry).decode
_encode = msgspec.json.Encoder(order="deterministic").encode  # = ledger.entries.encode_entry
_sha256 = hashlib.sha256
_TAGS: dict[type, str] = {cls: cls.__struct_config__.tag for cls in EVENT_TYPES}  # type: ignore[misc]


def _check_rows(report: Report, rows: list[Any], scan: _Scan) -> list[tuple[StoredEntry, Entry]]:
    """Check one batch of ``EntryRow``s; returns the entries that decoded.

    The common case (everything agrees) is one expression per entry; any disagreement goes to
    ``_explain``, which checks each rule on its own and reports every one that fails.
    """
    decoded = []
    checked = 0
    expected, last_recorded, leaves = scan.expected, scan.last_recorded, scan.leaves
    for row in rows:
        position, data, stored_hash = row[0], row[1], row[2]
        if position != expected:
            report.add(expected, f"positions jump from {expected - 1} to {position}")
        expected = position + 1
        digest = _sha256(b"\x00" + data).digest()
        leaves += digest
        try:
            entry = _decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            report.add(position, f"entry bytes do not decode: {exc}")
            if digest != stored_hash:
                report.add(position, "stored leaf hash does not match the entry bytes")
            continue
        evidence, salt, content = entry.evidence_digest, row[12], row[13]
        if (
            digest == stored_hash
            and entry.position == position
            and _TAGS.get(type(entry.event)) == entry.type
            and entry.recorded_at >= last_recorded
            and (entry.tenant, entry.key, entry.event_id, entry.type, entry.subaccount,
                 entry.msisdn, entry.occurred_at, entry.recorded_at) == row[3:11]
            and evidence is not None
            and salt is not None
            and content is not None
            and _evidence_digest(salt, content) == evidence
            and _encode(entry) == data
        ):  # fmt: skip
            checked += 1
        else:
            _explain(report, row, entry, digest, last_recorded)
        if entry.recorded_at > last_recorded:
            last_recorded = entry.recorded_at
        decoded.append((StoredEntry(position, data, digest), entry))
    report.evidence_checked += checked
    scan.expected, scan.last_recorded = expected, last_recorded
    return decoded


def _evidence_digest(salt: bytes, content: bytes) -> str:
    """base64(SHA-256(salt || content)) — ``ledger.entries.evidence_digest``."""
    return b2a_base64(_sha256(salt + content).digest(), newline=False).decode()


def _explain(report: Report, row: Any, entry: Entry, digest: bytes, last_recorded: str) -> None:
    """Report every rule that ``entry`` (decoded from ``row``) breaks."""
    position, data = row[0], row[1]
    if digest != row[2]:
        report.add(position, "stored leaf hash does not match the entry bytes")
    if encode_entry(entry) != data:
        report.add(position, "entry bytes are not in canonical form")
    if entry.position != position:
        report.add(position, f"entry says position {entry.position}")
    if event_type(entry.event) != entry.type:
        report.add(position, "entry type differs from its event's tag")
    if entry.recorded_at < last_recorded:
        report.add(position, "recorded time goes backwards")
    for name, value in zip(INDEXED_COLUMNS, row[3:11], strict=True):
        if getattr(entry, name) != value:
            report.add(position, f"indexed column {name!r} differs from the entry bytes")
    _check_evidence(report, position, entry.evidence_digest, row[11], row[12], row[13])


def _check_evidence(
    report: Report,
    position: int,
    digest: str | None,
    has_row: object,
    salt: object,
    content: object,
) -> None:
    if digest is None:
        if has_row:
            report.add(position, "evidence stored for an entry that has no evidence digest")
    elif not has_row:
        report.add(position, "evidence row is missing (erasure keeps a tombstone)")
    elif salt is None and content is None:
        report.evidence_erased += 1
    elif (
        isinstance(salt, bytes)
        and isinstance(content, bytes)
        and _evidence_digest(salt, content) == digest
    ):
        report.evidence_checked += 1
    else:
        report.add(position, "evidence does not match the entry's evidence digest")


# -- the tree -----------------------------------------------------------------------------------

_H = merkle.HASH_SIZE


def _check_tree(
    source: VerifySource, report: Report, leaves: bytes, progress: Progress | None
) -> list[bytes]:
    """Recompute every perfect subtree level by level and compare with the stored nodes.

    Returns the recomputed levels (level ``L`` = the concatenated hashes of its nodes).
    """
    levels = [leaves]
    bad: set[int] = set()  # indexes at the level below whose stored node differs
    height = max(len(leaves) // _H, 1).bit_length()
    stored = _stored_levels(source)
    for level in range(height):
        if level > 0:
            below = levels[-1]
            levels.append(
                b"".join(
                    _sha256(b"\x01" + below[i : i + 2 * _H]).digest()
                    for i in range(0, len(below) // (2 * _H) * 2 * _H, 2 * _H)
                )
            )
        found = stored.pop(level, None) or _StoredLevel()
        bad = _compare_level(report, level, levels[level], found, bad, len(leaves) // _H)
        if progress:
            progress("tree", level + 1, height)
    for level in sorted(stored):  # levels above the log's tree
        _extra_node(report, level, stored[level].idxs[0], len(leaves) // _H)
    return levels


class _StoredLevel:
    """The stored nodes of one tree level, in index order: their indexes, and their hashes end
    to end (a hash that is not 32 bytes long counts as 32 zero bytes: it differs, as it should)."""

    __slots__ = ("hashes", "idxs")

    def __init__(self) -> None:
        self.idxs = array("q")
        self.hashes = bytearray()


def _stored_levels(source: VerifySource) -> dict[int, _StoredLevel]:
    """Every stored node, read in one pass."""
    levels: dict[int, _StoredLevel] = {}
    for level, index, digest in source.tree_nodes():
        found = levels.get(level)
        if found is None:
            found = levels[level] = _StoredLevel()
        found.idxs.append(index)
        found.hashes += digest if len(digest) == _H else bytes(_H)
    return levels


def _compare_level(
    report: Report,
    level: int,
    computed: bytes,
    found: _StoredLevel,
    bad_below: set[int],
    size: int,
) -> set[int]:
    """Compare one level; returns the indexes whose stored node is missing or differs."""
    count = len(computed) // _H
    idxs = found.idxs
    report.tree_nodes += len(idxs)
    exact = len(idxs) == count and (not idxs or (idxs[0] == 0 and idxs[-1] == count - 1))
    if exact and found.hashes == computed:
        return set()
    stored = {idxs[i]: bytes(found.hashes[i * _H : (i + 1) * _H]) for i in range(len(idxs))}
    bad = set()
    for index in range(count):
        have = stored.pop(index, None)
        if have == computed[index * _H : (index + 1) * _H]:
            continue
        bad.add(index)
        if level == 0 or not {2 * index, 2 * index + 1} & bad_below:
            what = "is missing" if have is None else "differs from the tree of the entries"
            report.add(_first_position(level, index), f"stored tree node ({level}, {index}) {what}")
    for index in sorted(stored):
        _extra_node(report, level, index, size)
    return bad


def _extra_node(report: Report, level: int, index: int, size: int) -> None:
    """A stored node the log's ``size`` entries do not complete: named by the first position
    it covers beyond the log (entries after it were removed, or the node was forged)."""
    where = max(_first_position(level, index), size + 1)
    what = f"stored tree node ({level}, {index}) is beyond the log's entries (entries removed?)"
    report.add(where, what)


def _first_position(level: int, index: int) -> int:
    """The first log position a tree node covers (at least 1)."""
    return max(index * (1 << level) + 1, 1)


def _getter(levels: list[bytes]) -> merkle.NodeGetter:
    def get(level: int, index: int) -> bytes:
        return levels[level][index * _H : (index + 1) * _H]

    return get


# -- checkpoints --------------------------------------------------------------------------------


def _check_checkpoints(
    source: VerifySource,
    report: Report,
    verifier_key: str | None,
    levels: list[bytes],
    progress: Progress | None,
) -> None:
    size_now = len(levels[0]) // _H
    get = _getter(levels)
    previous: tuple[int, bytes] | None = None
    rows = source.checkpoints()
    for size, stored_root, note in rows:
        report.checkpoints += 1
        if progress:
            progress("checkpoints", report.checkpoints, len(rows))
        root = bytes(stored_root)
        where = max(size, 1)
        if verifier_key is not None and not _signed(report, where, size, root, note, verifier_key):
            continue
        if size > size_now:
            report.add(min(where, size_now + 1), f"checkpoint {size} covers entries the log no "
                       f"longer has (the log has {size_now}): entries were removed")  # fmt: skip
            continue
        since = previous[0] + 1 if previous else 1
        if merkle.root_from_nodes(size, get) != root:
            report.add(where, f"checkpoint {size}: its root differs from the tree of the entries "
                       f"(an entry in positions {since}..{size} was changed after it was signed, "
                       "or the checkpoint was replaced)")  # fmt: skip
        if previous is not None and previous[0] > 0:
            proof = merkle.consistency_proof_from_nodes(previous[0], size, get)
            if not merkle.verify_consistency(previous[0], size, previous[1], root, proof):
                report.add(where, f"checkpoint {size} is not consistent with checkpoint "
                           f"{previous[0]}")  # fmt: skip
        previous = (size, root)


def _signed(
    report: Report, where: int, size: int, root: bytes, note: str, verifier_key: str
) -> bool:
    """Whether the note's signature verifies and its checkpoint equals the row's columns."""
    try:
        cp = open_note(note, verifier_key)
    except InvalidInput as exc:
        report.add(where, f"checkpoint {size}: {exc}")
        return False
    if (cp.size, cp.root) != (size, root):
        report.add(where, f"checkpoint {size}: its columns differ from its signed note")
        return False
    return True
