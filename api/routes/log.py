"""The tamper-evident log over HTTP: signed checkpoints, raw entries and Merkle proofs.

Guarantees: every checkpoint served is a C2SP signed note that ``consent-ledger signing-key show``
verifies; proofs are RFC 9162 proofs built from the stored tree for the requested sizes and
verify against the checkpoint of that size; sizes and positions are validated before any work
(1 ≤ position ≤ tree_size ≤ log size, 1 ≤ first ≤ second ≤ log size; anything else, including
non-integers and values of 2^63 or more, is a 4xx problem, never a 500). A tenant key reads
checkpoints and consistency proofs (they hold no tenant data) and inclusion proofs for its own
entries only: another tenant's position looks exactly like one that does not exist (404). The
operator key reads everything, including the stored entry bytes for independent re-hashing.
An inclusion proof shows that an entry is in the log, not that no entry is missing.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import QueryParameter

from api.keys import Principal
from api.problems import unavailable
from api.state import Services
from ledger.checkpoint import Signer
from ledger.checkpoint_log import CheckpointRecord
from ledger.entries import b64
from ledger.errors import InvalidInput, NotFound
from ledger.sqlite import checkpoints as checkpoint_log
from ledger.sqlite import tree

TAGS = ["log"]
MAX_INT = 2**63 - 1
"""Largest size or position accepted (SQLite's integer range); larger is a 400 problem."""
MAX_PAGE = 1000

_ANY_KEY = {"any_key": True}
_AUDIT = {"scope": "audit", "any_key": True}
_OPERATOR = {"operator": True}

_DEFAULT_SIZE = (
    "Default: the size of the latest signed checkpoint (one is signed on demand when there is "
    "none yet, or when it does not cover the requested position), so the proof verifies "
    "against a checkpoint you can fetch from `/v1/log/checkpoints?since=<tree_size>&limit=1`."
)


# -- response bodies ----------------------------------------------------------------------------
class CheckpointView(msgspec.Struct, frozen=True, kw_only=True):
    """One signed checkpoint: its tree size and root, when it was signed, the signed note."""

    size: int
    root: str
    """Standard base64 of the 32-byte RFC 9162 root hash."""
    signed_at: str
    note: str
    """The C2SP signed note (checkpoint body, blank line, signature line)."""


class LogEntryView(msgspec.Struct, frozen=True, kw_only=True):
    """One stored entry: its position, exact bytes (base64) and RFC 9162 leaf hash (base64)."""

    position: int
    leaf_hash: str
    entry: str


class InclusionProofView(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9162 inclusion proof of leaf ``leaf_index`` (position − 1) in a tree of ``tree_size``."""

    leaf_index: int
    tree_size: int
    proof: list[str]


class ConsistencyProofView(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9162 consistency proof from the tree of ``first`` entries to that of ``second``."""

    first: int
    second: int
    proof: list[str]


def checkpoint_view(record: CheckpointRecord) -> CheckpointView:
    """The JSON form of a stored checkpoint."""
    return CheckpointView(
        size=record.size, root=b64(record.root), signed_at=record.signed_at, note=record.note
    )


# -- helpers ------------------------------------------------------------------------------------
def signer_or_503(services: Services, what: str = "checkpoints") -> Signer:
    """The checkpoint signer, or a 503 problem saying ``what`` cannot be signed while the
    signing key is unusable (why, and where the key lives, are logged, not answered)."""
    try:
        return services.get_signer()
    except (InvalidInput, OSError) as exc:
        raise unavailable(
            "signing-key-unavailable",
            f"{what} cannot be signed: the signing key is unusable",
            exc,
            retry_after=60,
        ) from exc


def _checkpoint_covering(services: Services, position: int = 0) -> CheckpointRecord:
    """The latest checkpoint, signing one now if there is none or it ends before ``position``."""
    ledger = services.ledger
    latest = ledger.latest_checkpoint()
    if latest is not None and latest.size >= position:
        return latest
    record = ledger.sign_checkpoint(signer_or_503(services), services.settings.origin)
    assert record is not None  # without min_interval a checkpoint is always returned
    return record


def _no_entry(position: int) -> NotFound:
    return NotFound(f"there is no entry at position {position}")


def _check_visible(services: Services, principal: Principal, position: int) -> None:
    """404 unless the entry exists and, for a tenant key, belongs to the key's tenant."""
    ledger = services.ledger
    if principal.operator:
        head = ledger.head()
        if position > head:
            raise InvalidInput(f"position {position} is beyond the log's {head} entries")
        return
    found = ledger.store.read_positions([position])
    if not found or found[0].entry.tenant != principal.tenant:
        raise _no_entry(position)


# -- parameters ---------------------------------------------------------------------------------
def _int(description: str, *, minimum: int = 1, maximum: int = MAX_INT) -> QueryParameter:
    return QueryParameter(ge=minimum, le=maximum, description=description)


_SINCE = _int("Only checkpoints with tree size ≥ this (default 0: from the first)", minimum=0)
_LIMIT_CP = _int(f"At most this many, oldest first (1–{MAX_PAGE}, default 100)", maximum=MAX_PAGE)
_START = _int("The first position to return (≥ 1)")
_LIMIT_ENTRIES = _int(f"At most this many entries (1–{MAX_PAGE}, default 100)", maximum=MAX_PAGE)
_POSITION = _int("The entry's log position (1 ≤ position ≤ tree_size)")
_TREE_SIZE = _int("The tree size to prove against (position ≤ tree_size ≤ log size). "
                  + _DEFAULT_SIZE)  # fmt: skip
_FIRST = _int("The older tree size (1 ≤ first ≤ second)")
_SECOND = _int("The newer tree size (first ≤ second ≤ log size). " + _DEFAULT_SIZE)


# -- examples -----------------------------------------------------------------------------------
# A real checkpoint of 1042 leaves b"entry 0" .. b"entry 1041" under a throwaway key.
_ROOT = "q64on6FXm+wkv+cQkEmCngpN3cyM+iRafWzm2VKluds="
_NOTE = (
    "consent-ledger\n1042\n" + _ROOT + "\n\n\u2014 consent-ledger "
    "u7+VezQOrQHkcOKlwGgkBHFXf0GD3v7PEnA4Vrmtv1Fqkoty7pzp9USBQJOiqr/ex5tKQdxR2epgetUGsLaqPYkOmgk=\n"
)
_CHECKPOINT = {"size": 1042, "root": _ROOT, "signed_at": "2026-03-02T09:16:00.000Z", "note": _NOTE}
_INCLUSION = [
    "Rn73BqsCMMU7SGYrU3boFVbdCx4Ss2dBA/9z7i4Fh/Q=", "3QN52DrH8WTn7qMM3O+1dQglTEj3Zq/M09l2Nl4yjMw=",
    "l5nzB1F+9RfCIF35tndivzR1ayAJn7ffzOdrzr0nOy4=", "fGUIzhK9/NpXQgT6uIEfs8HvZPefJgpa46VO6vARajs=",
    "FKwDuxqLeZp+HKNXHH6CcyuHE07dTBaaIywEnGZAU/Y=", "TJPs4ff/W2Yw6vf0QxuRWh/jb6/uFa2de+Kl7KPTyV0=",
    "Ze8RuTpVMVeWmDPL1EnDybvtS4U5yk/7vMV3d6qURoU=", "CwAYp5VoF7uxVS8pr5XTr7/7x3vezc1u1cmao1mHleA=",
    "r4NFhmVItaPNWPVlQ4PvcEzw6oGYJx0voXJ2X+pc1uM=", "L8tGi86kFvc2hEQQRWUeU0lLXbaqLw+wT7lZIXHaXC8=",
    "gxQKpsjT9U5/Fhmy9S49H8gk4Jmyfaynm5NQhcYPE7I=",
]  # fmt: skip
_CONSISTENCY = [
    "rDH6awjtIdGZhqp8F169KkIlfVLh4PrrNMOYhxXKCqM=", "7pyPwr8fqdQS4bGfOgxhcqTQxs5g3GsiPxyIjaq3efc=",
    "LyRP3WovAtfRWPOGQHg/u1ihH5YYxfE5X6tnUSSeJ5o=", "m4/yjPaqOVAiWjGjL745NknFjfngzQJ3uYPKzYIIalg=",
    "DWDe2wczlWpro9ae5v9X+k3dw1JGwI62x57j956mitM=", "ylFfuPWOJjkerEOsgxTcRknZe1Nnzav9njRFtt5ISZI=",
    "k9pJNZFHSVnKwKaCayEIxku4oi30S/6/njGup+WMXy4=", "xtuUnnbP1dYUB8c6SBkhJlqwJOphMdAtxrcN79/U+to=",
    "gxQKpsjT9U5/Fhmy9S49H8gk4Jmyfaynm5NQhcYPE7I=",
]  # fmt: skip
_ENTRY = {
    "position": 1,
    "leaf_hash": "dziFphNIniTOLPdhmdakI/BC5LvxLX7s7pEu8nbGVwE=",
    "entry": "ZW50cnkgMA==",
}


def _example(summary: str, value: Any) -> list[Example]:
    return [Example(summary=summary, value=value)]


# -- routes -------------------------------------------------------------------------------------
@get(
    "/v1/log/checkpoint",
    opt=_ANY_KEY,
    sync_to_thread=True,
    tags=TAGS,
    summary="The latest signed checkpoint (C2SP signed note)",
    description="The newest checkpoint as a C2SP signed note (text/plain): origin, tree size and "
    "base64 RFC 9162 root, a blank line, then an Ed25519 signature line. Verify it with the "
    "verifier key from `consent-ledger signing-key show`. If no checkpoint exists yet one is "
    "signed now. Any API key (tenant or operator) may read it.",
    media_type=MediaType.TEXT,
    responses={
        200: ResponseSpec(
            data_container=str,
            media_type=MediaType.TEXT,
            description="The signed note; the X-Checkpoint-Size header repeats its tree size",
            examples=_example("A checkpoint of 1042 entries", _NOTE),
        )
    },
)
def latest_checkpoint(services: NamedDependency[Services]) -> Response[str]:
    """The latest checkpoint's signed note."""
    record = _checkpoint_covering(services)
    return Response(
        record.note,
        media_type=MediaType.TEXT,
        headers={"X-Checkpoint-Size": str(record.size)},
    )


@get(
    "/v1/log/checkpoints",
    opt=_ANY_KEY,
    sync_to_thread=True,
    tags=TAGS,
    summary="Signed checkpoints from a tree size on",
    description="Every checkpoint with tree size ≥ `since`, oldest first (at most `limit`). "
    "Each is consistent with its predecessor; check it with "
    "`/v1/log/proof/consistency?first=<older size>&second=<newer size>`. Any API key.",
    responses={
        200: ResponseSpec(
            data_container=list[CheckpointView],
            description="The checkpoints",
            examples=_example("One checkpoint", [_CHECKPOINT]),
        )
    },
)
def list_checkpoints(
    services: NamedDependency[Services],
    since: Annotated[int, _SINCE] = 0,
    limit: Annotated[int, _LIMIT_CP] = 100,
) -> list[CheckpointView]:
    """Checkpoints with size ≥ ``since``, oldest first."""
    records = checkpoint_log.since(services.ledger.store.reader(), since, limit)
    return [checkpoint_view(r) for r in records]


@post(
    "/v1/log/checkpoints",
    opt=_OPERATOR,
    sync_to_thread=True,
    tags=TAGS,
    summary="Sign a checkpoint now (operator key)",
    description="Signs a checkpoint covering the newest entry if the log has grown since the "
    "latest one (201), after checking that the log is consistent with it; otherwise answers "
    "the latest (200). Needs an operator key.",
    status_code=201,
    responses={
        201: ResponseSpec(
            data_container=CheckpointView,
            description="A new checkpoint was signed",
            examples=_example("Signed now", _CHECKPOINT),
        ),
        200: ResponseSpec(
            data_container=CheckpointView,
            description="The log has not grown: the latest checkpoint",
            generate_examples=False,
        ),
    },
)
def sign_checkpoint(services: NamedDependency[Services]) -> Response[CheckpointView]:
    """Sign a checkpoint if the log grew; 201 with it, or 200 with the latest."""
    signer, ledger = signer_or_503(services), services.ledger
    with ledger.store.write_transaction() as conn:  # both reads and the signing under one lock
        before = checkpoint_log.latest(conn)
        record = checkpoint_log.sign(conn, signer, services.settings.origin, ledger.clock())
    assert record is not None  # without min_interval a checkpoint is always returned
    created = before is None or record.size != before.size
    return Response(checkpoint_view(record), status_code=201 if created else 200)


@get(
    "/v1/log/entries",
    opt=_OPERATOR,
    sync_to_thread=True,
    tags=TAGS,
    summary="Stored entry bytes for independent re-hashing (operator key)",
    description="Up to `limit` entries from position `start` on, in order: the exact stored "
    "bytes (base64; the RFC 9162 leaf input) and the leaf hash SHA-256(0x00 || bytes). An empty "
    "list past the end of the log. Needs an operator key (entries of every tenant).",
    responses={
        200: ResponseSpec(
            data_container=list[LogEntryView],
            description="The entries",
            examples=_example("The first entry of the example tree", [_ENTRY]),
        )
    },
)
def list_entries(
    services: NamedDependency[Services],
    start: Annotated[int, _START] = 1,
    limit: Annotated[int, _LIMIT_ENTRIES] = 100,
) -> list[LogEntryView]:
    """Stored entries from ``start`` on."""
    found = services.ledger.store.read_from(start, limit)
    return [LogEntryView(position=s.position, leaf_hash=b64(s.leaf_hash), entry=b64(s.data))
            for s in found]  # fmt: skip


@get(
    "/v1/log/proof/inclusion",
    opt=_AUDIT,
    sync_to_thread=True,
    tags=TAGS,
    summary="Inclusion proof of one entry",
    description="The RFC 9162 inclusion proof (audit path, leaf end first) of the entry at "
    "`position` (leaf_index = position − 1) in the tree of `tree_size` entries. Verify it "
    "against the root of the checkpoint of that size and the leaf hash of the entry's bytes. "
    "It shows the entry is in the log, not that no other entry exists. A tenant key (audit "
    "scope) gets proofs for its own entries only; the operator key for any.",
    responses={
        200: ResponseSpec(
            data_container=InclusionProofView,
            description="The proof",
            examples=_example(
                "Position 7 in a tree of 1042",
                {"leaf_index": 6, "tree_size": 1042, "proof": _INCLUSION},
            ),
        )
    },
)
def inclusion_proof(
    request: Request[Principal, Any, Any],
    services: NamedDependency[Services],
    position: Annotated[int, _POSITION],
    tree_size: Annotated[int | None, _TREE_SIZE] = None,
) -> InclusionProofView:
    """The inclusion proof of ``position`` in the tree of ``tree_size``."""
    _check_visible(services, request.user, position)
    size = tree_size if tree_size is not None else _checkpoint_covering(services, position).size
    with services.ledger.store.snapshot() as conn:
        proof = tree.inclusion_proof(conn, position, size)
    return InclusionProofView(
        leaf_index=position - 1, tree_size=size, proof=[b64(p) for p in proof]
    )


@get(
    "/v1/log/proof/consistency",
    opt=_AUDIT,
    sync_to_thread=True,
    tags=TAGS,
    summary="Consistency proof between two tree sizes",
    description="The RFC 9162 consistency proof that the tree of `first` entries is a prefix of "
    "the tree of `second` entries (equal sizes: an empty proof). Verify it against the roots "
    "of the two checkpoints. Holds no tenant data: any tenant key with the audit scope, or the "
    "operator key.",
    responses={
        200: ResponseSpec(
            data_container=ConsistencyProofView,
            description="The proof",
            examples=_example(
                "From 1000 to 1042 entries", {"first": 1000, "second": 1042, "proof": _CONSISTENCY}
            ),
        )
    },
)
def consistency_proof(
    services: NamedDependency[Services],
    first: Annotated[int, _FIRST],
    second: Annotated[int | None, _SECOND] = None,
) -> ConsistencyProofView:
    """The consistency proof from ``first`` to ``second`` entries."""
    size = second if second is not None else _checkpoint_covering(services).size
    if first > size:
        raise InvalidInput(f"need 1 ≤ first ≤ second; got first={first}, second={size}")
    with services.ledger.store.snapshot() as conn:
        proof = tree.consistency_proof(conn, first, size)
    return ConsistencyProofView(first=first, second=size, proof=[b64(p) for p in proof])


ROUTES = [
    latest_checkpoint,
    list_checkpoints,
    sign_checkpoint,
    list_entries,
    inclusion_proof,
    consistency_proof,
]
