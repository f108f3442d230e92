"""Automation Builder workflow definitions that forward inbound messages to the ledger.

Guarantees (README "Connecting 8x8"):
- ``definition`` returns an Automation API definition input (``{subAccountId, trigger, status,
  definition: {name, steps}}``) whose HTTP steps post the whole inbound message, in the 8x8
  webhook's own shape, to ``<base>/v1/webhooks/8x8``: the ledger's policy decides, never 8x8's
  substring match, and nothing generated posts to ``/v1/opt-ins``;
- every ``{{…}}`` variable it uses is one the trigger provides (``TRIGGER_VARIABLES``);
- ``branch`` mode first filters with Branch steps whose conditions together match every keyword
  of the policy case-insensitively (each keyword's first word, as a substring), each script at
  most ``MAX_SCRIPT`` characters; the two targets of each Branch step cannot both hold;
- the HTTP step retries itself on any response code other than 2xx (no response counts): it
  waits and posts again, at most ``TRIES`` posts in all (the umid keeps it idempotent);
- the ``Authorization`` header is a value the user supplies (``AUTH_PLACEHOLDER`` unless given);
- ``check`` lists every structural problem (duplicate step ids, a ``nextStepId`` or
  ``selectNextStep`` target that is no step, a variable the trigger does not provide, a script
  too long): a generated definition has none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from ledger.keywords import Policy, tokenize

Mode = Literal["forward", "branch"]
Channel = Literal["sms", "chatapps"]

TRIGGERS: Mapping[Channel, str] = {"sms": "inbound_sms", "chatapps": "inbound_chat_apps"}
WEBHOOK_PATH = "/v1/webhooks/8x8"
AUTH_PLACEHOLDER = "Bearer REPLACE-WITH-AN-INGEST-KEY"
"""The header value written when the user gave none (``consent-ledger keys create --scopes
ingest`` makes the key; the ledger never writes one into a workflow)."""
TRIES = 4
"""Posts per message in all: the first and three retries."""
WAITS = ("0.00:00:10", "0.00:00:30", "0.00:01:30")
"""The wait before each retry (``d.HH:mm:ss``), as 8x8's own webhook retries."""
HTTP_TIMEOUT_SECONDS = 10
MAX_SCRIPT = 1000
"""The longest script 8x8 runs (docs: Context & Scripting)."""

TRIGGER_VARIABLES: Mapping[str, frozenset[str]] = {
    "inbound_sms": frozenset(
        f"data.payload.{name}"
        for name in ("umid", "subAccountId", "timestamp", "source", "destination", "body")
    )
    | {"step.responseCode"},
    "inbound_chat_apps": frozenset(
        f"data.payload.{name}"
        for name in (
            "umid",
            "subAccountId",
            "timestamp",
            "user.msisdn",
            "content.text",
            "recipient.channel",
        )
    )
    | {"step.responseCode"},
}
"""The variables each trigger provides that a generated workflow may read (the inbound
webhook's fields under ``data.payload``; ``content.text`` and ``user.msisdn`` only for Messaging
Apps), and the HTTP step's own response code."""

_TEXT = {"sms": "data.payload.body", "chatapps": "data.payload.content.text"}
_VARIABLE = re.compile(r"\b(?:data|step)(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'")


def definition(
    subaccount: str,
    base_url: str,
    policy: Policy,
    *,
    mode: Mode = "forward",
    channel: Channel = "sms",
    authorization: str | None = None,
) -> dict[str, Any]:
    """The definition input for ``subaccount`` (see the module guarantees)."""
    url = base_url.rstrip("/") + WEBHOOK_PATH
    steps: list[dict[str, Any]] = []
    if mode == "branch":
        steps.extend(_filter(needles(policy), _TEXT[channel], "post_1"))
    steps.extend(_posts(url, channel, authorization or AUTH_PLACEHOLDER))
    return {
        "subAccountId": subaccount,
        "trigger": TRIGGERS[channel],
        "status": "enabled",
        "definition": {
            "name": f"consent-ledger {subaccount} ({mode}, {channel})",
            "steps": steps,
        },
    }


def needles(policy: Policy) -> list[str]:
    """What the Branch filter looks for: the first word of every keyword of ``policy``
    (normalised), without those that contain another (a text holding the longer one holds the
    shorter), in a stable order. Every message the policy reads as a keyword holds one of them
    in some case (``e`` also as é, è or ê), unless it spells it with other accents or
    full-width letters (README: forward mode has no such gap)."""
    firsts: list[str] = []
    for words in policy.keywords().values():
        for word in words:
            tokens = tokenize(word)
            if tokens and tokens[0] not in firsts:
                firsts.append(tokens[0])
    kept = [n for n in firsts if not any(o != n and o in n for o in firsts)]
    return kept + [v for n in kept for v in _accented(n) if v not in kept]


def _accented(needle: str) -> list[str]:
    """``needle`` with its every ``e`` as é, è and ê (ARRÊT reads as ARRET in the ledger, but
    holds no ``arret`` for 8x8's substring test)."""
    return [needle.replace("e", accent) for accent in "éèê"] if "e" in needle else []


def _filter(words: Sequence[str], text: str, target: str) -> list[dict[str, Any]]:
    """Branch steps that go to ``target`` when ``text`` holds any of ``words`` (any case): one
    step per group of words whose script fits, each going on to the next group otherwise."""
    groups = _groups([f"stringContains({text},'{_js(w)}',true)" for w in words])
    steps = []
    for i, group in enumerate(groups, start=1):
        condition = " || ".join(group)
        choices: dict[str, str] = {target: "{{" + condition + "}}"}
        if i < len(groups):
            choices[f"keyword_{i + 1}"] = "{{!(" + condition + ")}}"
        steps.append({"id": f"keyword_{i}", "stepType": "Branch", "selectNextStep": choices})
    return steps


def _groups(tests: Sequence[str]) -> list[list[str]]:
    """``tests`` in order, grouped so that each group's negated script fits ``MAX_SCRIPT``."""
    groups: list[list[str]] = [[]]
    for test in tests:
        if len("{{!(" + " || ".join([*groups[-1], test]) + ")}}") > MAX_SCRIPT and groups[-1]:
            groups.append([])
        groups[-1].append(test)
    return groups


def _js(word: str) -> str:
    return word.replace("\\", "\\\\").replace("'", "\\'")


def _body(channel: Channel) -> dict[str, Any]:
    """The inbound message in the 8x8 webhook's shape, from the trigger's variables."""
    common: dict[str, Any] = {
        "umid": "{{data.payload.umid}}",
        "subAccountId": "{{data.payload.subAccountId}}",
        "timestamp": "{{data.payload.timestamp}}",
    }
    if channel == "sms":
        payload = {
            **common,
            "source": "{{data.payload.source}}",
            "destination": "{{data.payload.destination}}",
            "body": "{{data.payload.body}}",
        }
        namespace = "SMS"
    else:
        payload = {
            **common,
            "user": {"msisdn": "{{data.payload.user.msisdn}}"},
            "recipient": {"channel": "{{data.payload.recipient.channel}}"},
            "content": {"text": "{{data.payload.content.text}}"},
        }
        namespace = "ChatApps"
    return {
        "namespace": namespace,
        "eventType": "inbound_message_received",
        "description": "forwarded by an Automation Builder workflow (consent-ledger)",
        "payload": payload,
    }


def _posts(url: str, channel: Channel, authorization: str) -> list[dict[str, Any]]:
    """``TRIES`` HTTP steps, each followed on a non-2xx answer by a wait and the next."""
    failed = "{{!(step.responseCode >= 200 && step.responseCode < 300)}}"
    steps: list[dict[str, Any]] = []
    for n in range(1, TRIES + 1):
        post: dict[str, Any] = {
            "id": f"post_{n}",
            "stepType": "HttpRequest",
            "inputs": {
                "url": url,
                "method": "POST",
                "headers": {"Content-Type": "application/json", "Authorization": authorization},
                "parameters": {},
                "body": _body(channel),
                "timeoutSeconds": HTTP_TIMEOUT_SECONDS,
            },
        }
        steps.append(post)
        if n < TRIES:
            post["selectNextStep"] = {f"wait_{n}": failed}
            steps.append(
                {
                    "id": f"wait_{n}",
                    "stepType": "Wait",
                    "inputs": {"duration": WAITS[n - 1]},
                    "nextStepId": f"post_{n + 1}",
                }
            )
    return steps


# -- the structural check ------------------------------------------------------------------------
def check(document: Mapping[str, Any]) -> list[str]:
    """Every structural problem of a definition input (empty: none); see the module."""
    problems: list[str] = []
    trigger = document.get("trigger")
    provided = TRIGGER_VARIABLES.get(trigger) if isinstance(trigger, str) else None
    if provided is None:
        problems.append(f"trigger {trigger!r} is not one this generator writes")
    steps = document.get("definition", {}).get("steps", [])
    ids = [s.get("id") for s in steps]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"step id {dup!r} is used more than once")
    known = set(ids)
    for step in steps:
        targets = [step.get("nextStepId"), *list((step.get("selectNextStep") or {}).keys())]
        for target in targets:
            if target is not None and target not in known:
                problems.append(f"step {step.get('id')!r} goes to {target!r}, which is no step")
        for script in _templates(step):
            if len("{{" + script + "}}") > MAX_SCRIPT:
                problems.append(f"step {step.get('id')!r} has a script over {MAX_SCRIPT} chars")
            for variable in variables(script):
                if provided is not None and variable not in provided:
                    problems.append(
                        f"step {step.get('id')!r} reads {variable}, which {trigger} does not "
                        "provide"
                    )
    return problems


def _templates(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield from _TEMPLATE.findall(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _templates(key)
            yield from _templates(item)
    elif isinstance(value, list):
        for item in value:
            yield from _templates(item)


def variables(script: str) -> set[str]:
    """The ``data.…`` and ``step.…`` paths a script reads (outside its string literals)."""
    return set(_VARIABLE.findall(_QUOTED.sub("''", script)))
