"""The Automation Builder workflow generator: structure, keywords, and pushing it to 8x8."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.cli.program import main
from api.eightxeight.fake import FakeEightByEight
from ledger.keywords import KeywordChanges, Policy, tokenize
from projections.eightxeight import workflow
from projections.ledger import ConsentLedger

from .conftest import API_KEY

EXTRA = [
    "HALT",
    "DESIST",
    "NOMORE",
    "BASTA",
    "PARE",
    "OPTOUTNOW",
    "ENOUGH",
    "LEAVE",
    "BLOCK",
    "UNSUB",
    "DETENER",
    "FERMER",
    "SALIR",
    "CESSER",
    "NEIN",
    "NIET",
    "REMOVEME",
    "STOPPEN",
    "AUFHOREN",
    "NOTHANKS",
]


def twenty_keyword_policy() -> Policy:
    return Policy(id="ACME", version=2, changes=KeywordChanges(add={"opt_out": EXTRA}))


CASES = [(m, c) for m in ("forward", "branch") for c in ("sms", "chatapps")]


@pytest.mark.parametrize(("mode", "channel"), CASES)
def test_generated_workflows_pass_the_structural_check(mode: Any, channel: Any) -> None:
    doc = workflow.definition(
        "ACME", "https://l.example", twenty_keyword_policy(), mode=mode, channel=channel
    )
    assert workflow.check(doc) == []
    assert doc["subAccountId"] == "ACME"
    assert doc["status"] == "enabled"
    assert doc["trigger"] == workflow.TRIGGERS[channel]
    steps = doc["definition"]["steps"]
    posts = [s for s in steps if s["stepType"] == "HttpRequest"]
    assert len(posts) == workflow.TRIES
    for post in posts:
        assert post["inputs"]["url"] == "https://l.example/v1/webhooks/8x8"
        assert "/v1/opt-ins" not in json.dumps(doc)
        assert post["inputs"]["headers"]["Authorization"] == workflow.AUTH_PLACEHOLDER
    text = "content.text" if channel == "chatapps" else "payload.body"
    assert text in json.dumps(posts[0]["inputs"]["body"])
    for branch in (s for s in steps if s["stepType"] == "Branch"):
        choices = list(branch["selectNextStep"].values())
        assert None not in choices  # no default branch: each pair cannot both hold
        if len(choices) == 2:
            assert choices[1] == "{{!(" + choices[0][2:-2] + ")}}"


def test_branch_mode_matches_every_keyword_in_any_case() -> None:
    policy = twenty_keyword_policy()
    words = [w for ws in policy.keywords().values() for w in ws]
    assert set(EXTRA) <= set(words)
    doc = workflow.definition("ACME", "https://l.example", policy, mode="branch")
    conditions = " ".join(
        v
        for s in doc["definition"]["steps"]
        if s["stepType"] == "Branch"
        for v in s["selectNextStep"].values()
    )
    needles = [n for n in _literals(conditions)]
    assert "true)" in conditions  # case-insensitive stringContains everywhere
    assert conditions.count("true)") == conditions.count("stringContains(")
    for word in words:
        for text in (word, word.lower(), f"please {word.title()}!", word.replace(" ", "-")):
            folded = text.lower()
            assert any(n in folded for n in needles), f"{text!r} would not reach the ledger"
    assert any(n in "arrêt" for n in needles)


def _literals(conditions: str) -> list[str]:
    import re

    return re.findall(r",'([^']*)',true\)", conditions)


def test_the_check_names_broken_workflows() -> None:
    doc = workflow.definition("ACME", "https://l.example", Policy(), mode="branch")
    steps = doc["definition"]["steps"]
    steps.append(dict(steps[-1]))
    steps[0]["selectNextStep"]["nowhere"] = "{{data.payload.user.msisdn == 1}}"
    problems = workflow.check(doc)
    assert any("more than once" in p for p in problems)
    assert any("'nowhere', which is no step" in p for p in problems)
    assert any("data.payload.user.msisdn" in p for p in problems)


def test_push_sends_exactly_the_document_and_a_second_push_updates(
    fake: FakeEightByEight, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    db = tmp_path / "l.db"
    monkeypatch.setenv("CONSENT_LEDGER_8X8_API_KEY", API_KEY)
    out = tmp_path / "wf.json"
    args = [
        "8x8",
        "workflow",
        "--db",
        str(db),
        "--subaccount",
        "ACME",
        "--url",
        "https://l.example",
        "--mode",
        "branch",
        "-o",
        str(out),
        "--push",
        "--account",
        "acc-1",
        "--automation-url",
        fake.url,
    ]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["created"] is True
    [created] = [r for r in fake.records if r.method == "POST"]
    assert created.body == json.loads(out.read_text())
    assert created.path == "/api/v1/accounts/acc-1/definitions"

    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["created"] is False
    assert second["definition_id"] == first["definition_id"]
    [updated] = [r for r in fake.records if r.method == "PUT"]
    assert updated.path == f"/api/v1/accounts/acc-1/definitions/{first['definition_id']}"
    assert updated.body == created.body
    assert [v["version"] for v in fake.definitions[first["definition_id"]]] == [1, 2]

    led = ConsentLedger(db)
    try:
        kinds = [e.entry.type for e in led.read_model.entries_of_types("default", ["8x8.workflow"])]
    finally:
        led.close()
    assert kinds == ["8x8.workflow", "8x8.workflow"]
    assert API_KEY not in db.read_bytes().decode("latin-1")


def test_dry_run_prints_the_request_with_the_key_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("CONSENT_LEDGER_8X8_API_KEY", API_KEY)
    assert (
        main(
            [
                "8x8",
                "workflow",
                "--db",
                str(tmp_path / "l.db"),
                "--subaccount",
                "ACME",
                "--url",
                "https://l.example",
                "--push",
                "--dry-run",
                "--account",
                "acc-1",
                "--automation-url",
                "http://127.0.0.1:9",
            ]
        )
        == 0
    )
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["method"] == "POST"
    assert shown["url"] == "http://127.0.0.1:9/api/v1/accounts/acc-1/definitions"
    assert API_KEY not in json.dumps(shown)
    assert shown["body"]["definition"]["steps"][0]["id"] == "post_1"


def test_first_words_are_what_8x8_sees() -> None:
    assert tokenize("OPT OUT")[0] in workflow.needles(Policy())
