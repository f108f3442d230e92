"""Checkpoints as C2SP signed notes: format, signatures, interop vector, and the key file."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import given
from hypothesis import strategies as st

from ledger.checkpoint import (
    Checkpoint,
    Signer,
    checkpoint_body,
    key_id,
    load_or_create_signing_key,
    open_note,
    parse_body,
    parse_verifier_key,
    verifier_key,
)
from ledger.errors import InvalidInput
from ledger.merkle import EMPTY_ROOT, root_hash

# golang.org/x/mod/sumdb/note example: PRIVATE+KEY+<name>+<id>+base64(0x01 || seed).
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT.decode()
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
    "dngotpRZb6KE6RyyBwJnAM=\n"
)

ORIGIN = "ledger.example/consent"
ROOT = root_hash([b"a", b"b", b"c"])


def _go_signer() -> Signer:
    seed = base64.b64decode(GO_SIGNER_KEY.split("+", 4)[4])[1:]
    return Signer("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))


def _signer(name: str = ORIGIN) -> Signer:
    return Signer(name, Ed25519PrivateKey.generate())


def _note(signer: Signer, cp: Checkpoint | None = None) -> str:
    return signer.sign_note(checkpoint_body(cp or Checkpoint(ORIGIN, 3, ROOT)))


# --- interop with the Go reference implementation ----------------------------------------------


def test_signing_reproduces_the_go_sumdb_note_example_byte_for_byte() -> None:
    signer = _go_signer()
    assert signer.verifier_key == GO_VERIFIER_KEY
    assert signer.sign_note(GO_TEXT) == GO_NOTE


def test_verifier_key_and_key_id_match_the_go_example() -> None:
    name, public_key = parse_verifier_key(GO_VERIFIER_KEY)
    assert name == "PeterNeumann"
    assert key_id(name, public_key).hex() == "c74f20a3"
    assert verifier_key(name, public_key) == GO_VERIFIER_KEY


def test_open_note_checks_the_go_signature_before_refusing_a_non_checkpoint_body() -> None:
    with pytest.raises(InvalidInput, match="3 lines"):
        open_note(GO_NOTE, GO_VERIFIER_KEY)
    with pytest.raises(InvalidInput, match="does not verify"):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), GO_VERIFIER_KEY)


# --- checkpoint bodies -------------------------------------------------------------------------


def test_body_layout() -> None:
    body = checkpoint_body(Checkpoint(ORIGIN, 20852163, ROOT))
    assert body == f"{ORIGIN}\n20852163\n{base64.b64encode(ROOT).decode()}\n".encode()
    assert checkpoint_body(Checkpoint(ORIGIN, 0, EMPTY_ROOT)) == (
        b"ledger.example/consent\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    )


@given(
    origin=st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1),
    size=st.integers(0, 2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
)
def test_body_round_trips(origin: str, size: int, root: bytes) -> None:
    cp = Checkpoint(origin, size, root)
    assert parse_body(checkpoint_body(cp)) == cp


@pytest.mark.parametrize(
    "cp",
    [
        Checkpoint("", 1, ROOT),
        Checkpoint("two\nlines", 1, ROOT),
        Checkpoint("tab\there", 1, ROOT),
        Checkpoint(ORIGIN, -1, ROOT),
        Checkpoint(ORIGIN, 2**63, ROOT),
        Checkpoint(ORIGIN, True, ROOT),
        Checkpoint(ORIGIN, 1, ROOT[:31]),
    ],
)
def test_body_refuses_invalid_checkpoints(cp: Checkpoint) -> None:
    with pytest.raises(InvalidInput):
        checkpoint_body(cp)


GOOD_ROOT = base64.b64encode(ROOT).decode()
URLSAFE_ROOT = base64.urlsafe_b64encode(bytes([0xFB]) * 32).decode()


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n3\n{GOOD_ROOT}",  # no final newline
        f"{ORIGIN}\n3\n{GOOD_ROOT}\nextension\n",  # extension lines are not ours
        f"{ORIGIN}\n3\n{GOOD_ROOT}\n\n",
        f"\n3\n{GOOD_ROOT}\n",  # empty origin
        f"{ORIGIN}\n03\n{GOOD_ROOT}\n",  # leading zero
        f"{ORIGIN}\n+3\n{GOOD_ROOT}\n",
        f"{ORIGIN}\n-3\n{GOOD_ROOT}\n",
        f"{ORIGIN}\n 3\n{GOOD_ROOT}\n",
        f"{ORIGIN}\n3_0\n{GOOD_ROOT}\n",
        f"{ORIGIN}\n\u0663\n{GOOD_ROOT}\n",  # Arabic-Indic digit three
        f"{ORIGIN}\n{2**63}\n{GOOD_ROOT}\n",
        f"{ORIGIN}\n3\n{GOOD_ROOT.rstrip('=')}\n",  # unpadded
        f"{ORIGIN}\n3\n{GOOD_ROOT[:-2]}B=\n",  # non-canonical trailing bits
        f"{ORIGIN}\n3\n{URLSAFE_ROOT}\n",
        f"{ORIGIN}\n3\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"{ORIGIN}\r\n3\r\n{GOOD_ROOT}\r\n",
        f"{ORIGIN}\x00\n3\n{GOOD_ROOT}\n",
    ],
)
def test_parse_body_is_strict(body: str) -> None:
    with pytest.raises(InvalidInput):
        parse_body(body.encode())


def test_parse_body_refuses_invalid_utf8() -> None:
    with pytest.raises(InvalidInput):
        parse_body(b"\xff\n3\n" + GOOD_ROOT.encode() + b"\n")


# --- signing and opening -----------------------------------------------------------------------


@given(size=st.integers(0, 2**63 - 1), root=st.binary(min_size=32, max_size=32))
def test_sign_then_open_round_trips(size: int, root: bytes) -> None:
    signer = _go_signer()
    cp = Checkpoint(ORIGIN, size, root)
    assert open_note(_note(signer, cp), signer.verifier_key) == cp
    assert open_note(_note(signer, cp).encode(), signer.verifier_key) == cp


def test_note_layout_is_body_blank_line_signature_line() -> None:
    signer = _signer()
    body = checkpoint_body(Checkpoint(ORIGIN, 3, ROOT))
    note = signer.sign_note(body)
    head, sig_line = note.encode().split(b"\n\n")
    assert head + b"\n" == body
    assert sig_line.startswith(f"\u2014 {ORIGIN} ".encode())
    assert sig_line.endswith(b"\n")
    assert sig_line.count(b"\n") == 1


def test_independent_verification_from_the_spec_byte_layout() -> None:
    """Verify a note with nothing from ledger.checkpoint: only the C2SP byte layout."""
    signer = _signer()
    body = checkpoint_body(Checkpoint(ORIGIN, 3, ROOT))
    note = signer.sign_note(body).encode("utf-8")

    text_end = note.rindex(b"\n\n") + 1  # the text keeps its last newline, not the blank line
    signed, sig_lines = note[:text_end], note[text_end + 1 :]
    assert signed == body
    (line,) = sig_lines.decode("utf-8").splitlines()
    dash, name, sig_b64 = line.split(" ")
    assert dash == "\u2014"
    assert name == ORIGIN
    blob = base64.b64decode(sig_b64, validate=True)
    assert len(blob) == 4 + 64
    got_key_id, signature = blob[:4], blob[4:]

    vk_name, vk_id_hex, vk_b64 = signer.verifier_key.split("+", 2)
    vk = base64.b64decode(vk_b64, validate=True)
    assert (vk_name, vk[0], len(vk)) == (ORIGIN, 0x01, 33)
    public = vk[1:]
    expected_id = hashlib.sha256(name.encode() + b"\n" + b"\x01" + public).digest()[:4]
    assert got_key_id == expected_id
    assert vk_id_hex == expected_id.hex()
    Ed25519PublicKey.from_public_bytes(public).verify(signature, signed)
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(public).verify(signature, signed + b"\n")


def _replace_line(note: str, index: int, new: str) -> str:
    lines = note.split("\n")
    lines[index] = new
    return "\n".join(lines)


def test_any_alteration_is_refused() -> None:
    signer = _signer()
    note = _note(signer)
    other_root = base64.b64encode(EMPTY_ROOT).decode()
    sig_line = note.split("\n")[4]
    blob = bytearray(base64.b64decode(sig_line.split(" ")[2]))
    blob[10] ^= 1
    altered = [
        _replace_line(note, 0, "ledger.example/other"),
        _replace_line(note, 1, "4"),
        _replace_line(note, 2, other_root),
        _replace_line(note, 4, f"\u2014 {ORIGIN} {base64.b64encode(bytes(blob)).decode()}"),
        note.replace("\n\n", "\n \n"),
        note.replace("\u2014", "-"),
        note[:-1],
    ]
    for bad in altered:
        with pytest.raises(InvalidInput):
            open_note(bad, signer.verifier_key)


def test_signatures_from_other_keys_are_ignored_but_one_of_ours_is_required() -> None:
    ours, theirs, namesake = _signer(), _signer("witness.example/w1"), _signer()
    note = _note(ours)
    cosigned = note + theirs.sign_note(checkpoint_body(Checkpoint(ORIGIN, 3, ROOT))).split("\n")[4]
    cosigned += "\n"
    assert open_note(cosigned, ours.verifier_key).size == 3
    assert open_note(cosigned, theirs.verifier_key).size == 3
    with pytest.raises(InvalidInput, match="no signature"):
        open_note(note, theirs.verifier_key)
    with pytest.raises(InvalidInput, match="no signature"):
        open_note(note, namesake.verifier_key)  # same name, other key ID: not ours


def test_a_failing_signature_from_our_key_rejects_the_note_even_beside_a_good_one() -> None:
    signer = _signer()
    note = _note(signer)
    sig_line = note.split("\n")[4]
    blob = bytearray(base64.b64decode(sig_line.split(" ")[2]))
    blob[-1] ^= 1
    bad_line = f"\u2014 {ORIGIN} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(InvalidInput, match="does not verify"):
        open_note(note + bad_line, signer.verifier_key)


@pytest.mark.parametrize(
    "note",
    [
        "",
        "\n",
        "no signature block\n",
        f"{ORIGIN}\n3\n{GOOD_ROOT}\n\n",
        f"{ORIGIN}\n3\n{GOOD_ROOT}\n\n\u2014 name\n",
        f"{ORIGIN}\n3\n{GOOD_ROOT}\n\n\u2014 na+me AAAAAAA=\n",
        f"{ORIGIN}\n3\n{GOOD_ROOT}\n\n\u2014 name AAAA\n",
        f"{ORIGIN}\n3\n{GOOD_ROOT}\n\n\u2014 name not-base64!\n",
        f"{ORIGIN}\n3\n{GOOD_ROOT}\n\n\u2014 name AAAAAAA=\n\n",
        "\ud800\n\n",
        "x" * (64 * 1024 + 1),
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(InvalidInput):
        open_note(note, _signer().verifier_key)


def test_sign_note_refuses_text_that_is_not_a_note_body() -> None:
    signer = _signer()
    for body in (b"", b"no newline", b"a\n\nb\n", b"\na\n", b"bell\x07\n", b"\xff\n"):
        with pytest.raises(InvalidInput):
            signer.sign_note(body)


# --- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "has space", "has\ttab", "a+b", "nbsp\u00a0", "nl\n"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        Signer(name, Ed25519PrivateKey.generate())
    with pytest.raises(InvalidInput):
        key_id(name, bytes(32))


def test_verifier_key_round_trips_even_with_plus_in_base64() -> None:
    for _ in range(20):  # standard base64 of a random key often contains '+'
        signer = _signer()
        assert parse_verifier_key(signer.verifier_key) == (signer.name, signer.public_key)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k.replace("c74f20a3", "c74f20a4"),  # wrong key id
        lambda k: k.replace("+ARpc", "+AhpC"),  # other type byte
        lambda k: "Peter+" + k,  # '+' in name
        lambda k: k.split("+", 1)[1],  # no name
        lambda k: k[:-4],  # truncated key
        lambda k: k + "A",
        lambda k: k.replace("c74f20a3", "c74f20"),
    ],
)
def test_parse_verifier_key_refuses_mangled_keys(mangle: Callable[[str], str]) -> None:
    with pytest.raises(InvalidInput):
        parse_verifier_key(mangle(GO_VERIFIER_KEY))


# --- key file ----------------------------------------------------------------------------------


def test_key_file_is_created_owner_only_and_reloads_identically(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    first = load_or_create_signing_key(path, ORIGIN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signing.key"]  # no temp file left
    again = load_or_create_signing_key(path, ORIGIN)
    assert again.public_key == first.public_key
    assert again.verifier_key == first.verifier_key
    assert open_note(_note(first), again.verifier_key).root == ROOT


def test_key_file_readable_by_group_or_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    load_or_create_signing_key(path, ORIGIN)
    for mode in (0o640, 0o604, 0o660):
        path.chmod(mode)
        with pytest.raises(InvalidInput, match="mode"):
            load_or_create_signing_key(path, ORIGIN)


def test_malformed_key_file_is_refused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"not a key")
    os.close(fd)
    with pytest.raises(InvalidInput, match="not a PEM"):
        load_or_create_signing_key(path, ORIGIN)
    assert path.read_bytes() == b"not a key"


def test_raw_32_byte_key_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "raw.key"
    seed = base64.b64decode(GO_SIGNER_KEY.split("+", 4)[4])[1:]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, seed)
    os.close(fd)
    assert load_or_create_signing_key(path, "PeterNeumann").verifier_key == GO_VERIFIER_KEY


def test_key_file_refuses_invalid_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        load_or_create_signing_key(tmp_path / "k", "bad name")
    assert not (tmp_path / "k").exists()
