"""Checkpoints (signed tree heads): C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519.

Guarantees: ``Signer.sign_note`` output is byte-identical to golang.org/x/mod/sumdb/note and
other C2SP implementations for the same key and text; ``open_note`` returns a checkpoint only
after a signature from the given verifier key has verified over the exact body bytes; malformed
input raises ``InvalidInput`` with a one-line reason, never anything else.

A checkpoint proves what the log held at one size. Inclusion proofs against it show an entry is
in the log, not that no entry is missing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import stat
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.errors import InvalidInput

ED25519_TYPE = b"\x01"
"""C2SP signed-note signature type byte for Ed25519."""

SIGNATURE_PREFIX = "\u2014 "
"""Start of every signature line: em dash (U+2014) and a space."""

MAX_NOTE_BYTES = 64 * 1024
"""Largest signed note ``open_note`` reads."""

MAX_SIGNATURES = 64
"""Most signature lines ``open_note`` reads (C2SP requires accepting at least 16)."""

_MAX_TREE_SIZE = 2**63 - 1
_SIZE_TEXT = re.compile(r"0|[1-9][0-9]{0,18}")
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_MAX_KEY_FILE = 4096


class Checkpoint(msgspec.Struct, frozen=True):
    """A log's tree head: its origin line, tree size and RFC 9162 root hash (32 bytes)."""

    origin: str
    size: int
    root: bytes


# --- checkpoint bodies -------------------------------------------------------------------------


def checkpoint_body(cp: Checkpoint) -> bytes:
    """Return the C2SP checkpoint note text ``b"<origin>\\n<size>\\n<base64 root>\\n"``.

    Raises ``InvalidInput`` for an empty origin or one with control characters, a size outside
    ``[0, 2**63)``, or a root that is not 32 bytes; ``parse_body`` reads the result back exactly.
    """
    _check_origin(cp.origin)
    if type(cp.size) is not int or not 0 <= cp.size <= _MAX_TREE_SIZE:
        raise InvalidInput(f"checkpoint size {cp.size!r} is not a tree size")
    if not isinstance(cp.root, bytes) or len(cp.root) != 32:
        raise InvalidInput("checkpoint root must be 32 bytes")
    return f"{cp.origin}\n{cp.size}\n{_b64(cp.root)}\n".encode()


def parse_body(body: bytes) -> Checkpoint:
    """Parse a checkpoint note text written as by ``checkpoint_body``, and nothing else.

    Exactly three lines, each ending in a newline: a non-empty origin, a decimal size without
    sign or leading zeros, canonical base64 of 32 bytes. Extension lines are refused.
    Raises ``InvalidInput`` naming what is wrong.
    """
    text = _utf8(body, "checkpoint")
    if _CONTROL.search(text) or not text.endswith("\n"):
        raise InvalidInput("checkpoint must be lines of text, each ending in a newline")
    lines = text[:-1].split("\n")
    if len(lines) != 3:
        raise InvalidInput(f"checkpoint must have 3 lines (origin, size, root), not {len(lines)}")
    origin, size_text, root_text = lines
    _check_origin(origin)
    if not _SIZE_TEXT.fullmatch(size_text) or int(size_text) > _MAX_TREE_SIZE:
        raise InvalidInput(f"checkpoint size {size_text!r} is not a decimal tree size")
    root = _unb64(root_text, "checkpoint root")
    if len(root) != 32:
        raise InvalidInput("checkpoint root must be 32 bytes")
    return Checkpoint(origin=origin, size=int(size_text), root=root)


# --- keys --------------------------------------------------------------------------------------


def key_id(name: str, public_key: bytes) -> bytes:
    """Return the 4-byte C2SP key ID: SHA-256(name || 0x0A || 0x01 || public_key)[:4].

    Raises ``InvalidInput`` for an invalid key name or a public key that is not 32 bytes.
    """
    _check_key_name(name)
    if len(public_key) != 32:
        raise InvalidInput("an Ed25519 public key is 32 bytes")
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + public_key).digest()[:4]


def verifier_key(name: str, public_key: bytes) -> str:
    """Return the verifier key string ``<name>+<8 hex key ID>+<base64(0x01 || public_key)>``."""
    return f"{name}+{key_id(name, public_key).hex()}+{_b64(ED25519_TYPE + public_key)}"


def parse_verifier_key(text: str) -> tuple[str, bytes]:
    """Return ``(name, 32-byte public key)`` from a verifier key string (outer whitespace ignored).

    Raises ``InvalidInput`` unless the name is valid, the type byte is Ed25519 (0x01), and the
    key ID matches the name and key.
    """
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not _KEY_ID_HEX.fullmatch(parts[1]):
        raise InvalidInput("verifier key must look like <name>+<8 hex digits>+<base64 key>")
    name, id_hex, key_text = parts
    key = _unb64(key_text, "verifier key")
    if key[:1] != ED25519_TYPE:
        raise InvalidInput("verifier key is not an Ed25519 (type 0x01) key")
    if len(key) != 33:
        raise InvalidInput("verifier key must hold a 32-byte Ed25519 public key")
    if key_id(name, key[1:]) != bytes.fromhex(id_hex):
        raise InvalidInput(f"verifier key ID {id_hex} does not match its name and key")
    return name, key[1:]


class Signer:
    """An Ed25519 note signer under one key name; the private key never leaves the object."""

    name: str
    """The C2SP key name written in signature lines."""
    public_key: bytes
    """The raw 32-byte Ed25519 public key."""
    key_id: bytes
    """The 4-byte C2SP key ID of (name, public key)."""
    verifier_key: str
    """The verifier key string that ``open_note`` needs to check this signer's notes."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        """Bind ``private_key`` to ``name``; raises ``InvalidInput`` for an invalid key name."""
        _check_key_name(name)
        self.name = name
        self._private_key = private_key
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id(name, self.public_key)
        self.verifier_key = verifier_key(name, self.public_key)

    def __repr__(self) -> str:
        return f"Signer({self.verifier_key!r})"

    def sign_note(self, body: bytes) -> str:
        """Return ``body``, a blank line and one signature line over exactly ``body``.

        Raises ``InvalidInput`` unless ``body`` is non-empty UTF-8 text without control
        characters or blank lines that ends with a newline.
        """
        text = _utf8(body, "note text")
        if not text.endswith("\n") or text.startswith("\n") or "\n\n" in text:
            raise InvalidInput("note text must be non-empty lines, each ending in a newline")
        if _CONTROL.search(text):
            raise InvalidInput("note text must not contain control characters")
        signature = self.key_id + self._private_key.sign(body)
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {_b64(signature)}\n"


# --- signed notes ------------------------------------------------------------------------------


def open_note(note: str | bytes, verifier: str) -> Checkpoint:
    """Verify a signed checkpoint note against ``verifier`` and return its checkpoint.

    Signature lines from other keys (another name or key ID) are ignored; at least one line
    from ``verifier`` must verify and any that fails rejects the note. Raises ``InvalidInput``
    with a one-line reason for a malformed note, a bad verifier key, a missing or failing
    signature, or a body that is not a checkpoint.
    """
    name, public_key = parse_verifier_key(verifier)
    body, signatures = _split_note(note)
    wanted_id = key_id(name, public_key)
    ours = [sig for sig_name, sig_id, sig in signatures if (sig_name, sig_id) == (name, wanted_id)]
    if not ours:
        raise InvalidInput(f"note has no signature from key {name}")
    for signature in ours:
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, body)
        except (InvalidSignature, ValueError):
            raise InvalidInput(f"signature from key {name} does not verify") from None
    return parse_body(body)


def _split_note(note: str | bytes) -> tuple[bytes, list[tuple[str, bytes, bytes]]]:
    """Return (body bytes, [(key name, key ID, signature)]) of a well-formed signed note."""
    try:
        raw = note.encode() if isinstance(note, str) else note
    except UnicodeEncodeError:
        raise InvalidInput("note is not valid Unicode text") from None
    if len(raw) > MAX_NOTE_BYTES:
        raise InvalidInput(f"note is larger than {MAX_NOTE_BYTES} bytes")
    text = _utf8(raw, "note")
    if _CONTROL.search(text) or not text.endswith("\n"):
        raise InvalidInput("note must be lines of text, each ending in a newline")
    cut = text.rfind("\n\n")
    if cut < 0 or cut + 2 == len(text):
        raise InvalidInput("note has no signature lines after a blank line")
    lines = text[cut + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise InvalidInput(f"note has more than {MAX_SIGNATURES} signatures")
    return text[: cut + 1].encode(), [_parse_signature_line(line) for line in lines]


def _parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    name, space, sig_text = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
    if not line.startswith(SIGNATURE_PREFIX) or not space or not _is_key_name(name):
        raise InvalidInput("note has a malformed signature line")
    blob = _unb64(sig_text, "note signature")
    if len(blob) < 5:
        raise InvalidInput("note has a signature line too short to hold a key ID and signature")
    return name, blob[:4], blob[4:]


# --- key file ----------------------------------------------------------------------------------


def load_or_create_signing_key(path: Path, name: str) -> Signer:
    """Return a signer for the Ed25519 key in ``path``, creating the file if it does not exist.

    A new key is written as unencrypted PKCS#8 PEM, published atomically with mode 0600 so no
    reader sees a partial file, and a concurrent creator's key wins over ours. An existing file
    may hold PEM or the raw 32-byte private key. Raises ``InvalidInput`` for an invalid name, a
    file that group or others may access, or a file that is not an Ed25519 private key.
    """
    _check_key_name(name)
    try:
        return Signer(name, _read_key_file(path))
    except FileNotFoundError:
        pass
    try:
        return new_signing_key(path, name)
    except InvalidInput:  # a concurrent creator's key wins over ours
        return Signer(name, _read_key_file(path))


def load_signing_key(path: Path, name: str) -> Signer:
    """Return a signer for the Ed25519 key in ``path``, which must exist (never created here:
    ``InvalidInput`` naming the file otherwise, as for ``load_or_create_signing_key``)."""
    _check_key_name(name)
    try:
        return Signer(name, _read_key_file(path))
    except FileNotFoundError:
        raise InvalidInput(f"signing key {path} does not exist") from None


def new_signing_key(path: Path, name: str) -> Signer:
    """Create a new Ed25519 key file at ``path`` (0600, published atomically); ``InvalidInput``
    if the file already exists (a key is never overwritten)."""
    _check_key_name(name)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if not _publish_new_file(path, pem):
        raise InvalidInput(f"{path} already exists; a signing key is never overwritten")
    return Signer(name, key)


def _read_key_file(path: Path) -> Ed25519PrivateKey:
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"signing key {path} is not a regular file")
        if info.st_mode & 0o077:
            mode = oct(stat.S_IMODE(info.st_mode))
            raise InvalidInput(f"signing key {path} has mode {mode}; only its owner may access it")
        data = handle.read(_MAX_KEY_FILE)
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidInput(f"signing key {path} is not a PEM or raw private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"signing key {path} is not an Ed25519 key")
    return key


def _publish_new_file(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` (mode 0600) unless it exists; False if someone else won."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        _fsync_dir(path.parent)
        return True
    finally:
        temp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- small helpers -----------------------------------------------------------------------------


def _is_key_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == "+" or c < " " for c in name)


def _check_key_name(name: str) -> None:
    if not _is_key_name(name):
        raise InvalidInput(f"key name {name!r} must be non-empty, without spaces or '+'")


def _check_origin(origin: str) -> None:
    if not isinstance(origin, str) or not origin or _CONTROL.search(origin) or "\n" in origin:
        raise InvalidInput("checkpoint origin must be one non-empty line of text")


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except (UnicodeDecodeError, AttributeError):
        raise InvalidInput(f"{what} is not UTF-8 bytes") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    """Decode standard, padded, canonical base64 (re-encoding gives ``text`` back)."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{what} is not valid base64") from None
    if _b64(data) != text:
        raise InvalidInput(f"{what} is not canonical base64")
    return data
