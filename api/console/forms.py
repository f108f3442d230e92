"""The console's forms read into the application layer's arguments.

Guarantees: a form is read into exactly what the API's JSON body would say — the values are
then checked by the same code the API uses (``ConsentLedger.update_subaccount``: regions,
modes, ``unknown``, keyword lists with their mandatory keywords; ``projections.resolve``:
actions, notes, subaccounts) — and a value outside its choices is ``InvalidInput`` naming the
field, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from ledger.errors import InvalidInput
from ledger.events import ReviewAction, Unknown
from ledger.keywords import KeywordAction, KeywordChanges, Mode
from projections.config import SubaccountSettings
from projections.ledger import SubaccountChanges

KEYWORD_ACTIONS: tuple[KeywordAction, ...] = get_args(KeywordAction)
MODES: tuple[Mode, ...] = get_args(Mode)
UNKNOWN: tuple[Unknown, ...] = get_args(Unknown)
REVIEW_ACTIONS: tuple[ReviewAction, ...] = get_args(ReviewAction)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def settings_form(settings: SubaccountSettings | None) -> dict[str, str]:
    """The settings form filled with ``settings`` (defaults for a new subaccount)."""
    keywords = settings.keywords if settings else KeywordChanges()
    form = {
        "default_region": (settings.default_region if settings else None) or "",
        "mode": settings.mode if settings else "standard",
        "unknown": settings.unknown if settings else "allow",
    }
    for action in KEYWORD_ACTIONS:
        form[f"add_{action}"] = "\n".join(keywords.add.get(action, []))
        form[f"remove_{action}"] = "\n".join(keywords.remove.get(action, []))
    return form


def _choice(form: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = str(form.get(name, "")).strip()
    if value not in choices:
        raise InvalidInput(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value


def settings_changes(form: Mapping[str, Any]) -> SubaccountChanges:
    """The subaccount change a submitted settings form asks for (the keyword lists replace the
    subaccount's additions and removals as a whole, as on the API)."""
    add = {a: _lines(str(form.get(f"add_{a}", ""))) for a in KEYWORD_ACTIONS}
    remove = {a: _lines(str(form.get(f"remove_{a}", ""))) for a in KEYWORD_ACTIONS}
    region = str(form.get("default_region", "")).strip() or None
    return SubaccountChanges(
        default_region=region,
        mode=_choice(form, "mode", MODES),  # type: ignore[typeddict-item]
        unknown=_choice(form, "unknown", UNKNOWN),  # type: ignore[typeddict-item]
        keywords=KeywordChanges(
            add={a: kws for a, kws in add.items() if kws},
            remove={a: kws for a, kws in remove.items() if kws},
        ),
    )


def review_action(form: Mapping[str, Any]) -> ReviewAction:
    """The resolution a confirmation form names."""
    return _choice(form, "action", REVIEW_ACTIONS)  # type: ignore[return-value]
