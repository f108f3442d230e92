"""The project's own documentation: links that resolve, nothing outside the repository, and the
verification script of docs/evidence.md doing what it says."""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import unicodedata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ledger import merkle
from ledger.checkpoint import load_or_create_signing_key
from ledger.entries import Evidence, b64
from projections.evidence import build_bundle, encode_bundle
from projections.intake import IntakeRequest, record
from projections.ledger import ConsentLedger

ROOT = Path(__file__).parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
MARKDOWN = [ROOT / "README.md", *DOCS]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
TEXT_SUFFIXES = {".py", ".sql", ".md", ".toml", ".lua", ".json", ".txt", ".cfg", ".yml", ".yaml"}


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading of a Markdown file (outside code blocks)."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_the_docs_folder_holds_the_four_guides() -> None:
    names = {p.name for p in DOCS}
    assert {"consent-rules.md", "http-api.md", "evidence.md", "operating.md"} <= names


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.name)
def test_every_relative_link_resolves(path: Path) -> None:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.is_relative_to(ROOT), f"{path.name} links outside the repository: {target}"
        assert linked.exists(), f"{path.name} links to a missing file: {target}"
        if anchor:
            assert anchor in anchors(linked), f"{path.name}: no heading for #{anchor} in {file}"


def test_nothing_in_the_repository_points_outside_it() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    offenders = []
    for name in tracked.stdout.splitlines():
        path = ROOT / name
        if path.suffix in TEXT_SUFFIXES and path.is_file() and path != Path(__file__):
            text = path.read_text(encoding="utf-8", errors="replace")
            if "../shared" in text or re.search(r"\bDESIGN(\.md| §)", text):
                offenders.append(name)
    unexpected = sorted(set(offenders))
    assert not unexpected, f"these cite a file outside the repository: {unexpected}"


# -- the verification script of docs/evidence.md ------------------------------------------------
@pytest.fixture(scope="module")
def script() -> ModuleType:
    """The Python block of docs/evidence.md, loaded as a module (its __main__ part not run)."""
    text = (ROOT / "docs" / "evidence.md").read_text(encoding="utf-8")
    [code] = re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)
    module = ModuleType("check_bundle")
    exec(compile(code, "docs/evidence.md (python block)", "exec"), module.__dict__)
    return module


def test_the_documented_proof_checks_agree_with_the_ledger(script: Any) -> None:
    leaves = [f"entry {i}".encode() for i in range(40)]
    for size in range(1, len(leaves) + 1):
        root = merkle.root_hash(leaves[:size])
        for index in range(size):
            proof = merkle.inclusion_proof(index, leaves[:size])
            leaf = merkle.leaf_hash(leaves[index])
            assert script.verify_inclusion(index, size, leaf, proof, root)
            assert not script.verify_inclusion(index, size, leaf, proof, bytes(32))
        for first in range(1, size + 1):
            proof = merkle.consistency_proof(first, leaves[:size])
            old = merkle.root_hash(leaves[:first])
            assert script.verify_consistency(first, size, old, root, proof), (first, size)
            assert not script.verify_consistency(first, size, bytes(32), root, proof)


def test_the_documented_script_checks_a_real_bundle(script: Any, tmp_path: Path) -> None:
    ledger = ConsentLedger(tmp_path / "ledger.db")
    try:
        ledger.configure_subaccount("default", "ACME_MKT", actor="admin:docs")
        for text in ("STOP", "START"):
            record(
                ledger,
                IntakeRequest(
                    tenant="default",
                    subaccount="ACME_MKT",
                    msisdn="+6581968289",
                    method="8x8-webhook",
                    text=text,
                    evidence=Evidence(raw_body=f'{{"body": "{text}"}}', text=text),
                ),
            )
        signer = load_or_create_signing_key(tmp_path / "signing-key", "consent-ledger")
        bundle = json.loads(
            encode_bundle(
                build_bundle(ledger, signer, "consent-ledger", "default", "ACME_MKT", "+6581968289")
            )
        )
    finally:
        ledger.close()
    script.check_bundle(bundle, signer.verifier_key)  # raises on any failure

    other = load_or_create_signing_key(tmp_path / "other-key", "consent-ledger")
    with pytest.raises(ValueError, match="no signature from this key"):
        script.check_bundle(bundle, other.verifier_key)
    stop = bundle["entries"][1]
    assert stop["evidence"]["status"] == "kept"
    edited = copy.deepcopy(bundle)
    edited["entries"][1]["evidence"]["content"] = b64(b'{"text":"START"}')
    with pytest.raises(ValueError, match="evidence of entry 2 does not match"):
        script.check_bundle(edited, signer.verifier_key)
    edited = copy.deepcopy(bundle)
    data = base64.b64decode(stop["bytes"]).replace(b'"keyword":"STOP"', b'"keyword":"STAP"')
    edited["entries"][1]["bytes"] = b64(data)
    with pytest.raises(ValueError, match="entry 2 is not in the signed tree"):
        script.check_bundle(edited, signer.verifier_key)
