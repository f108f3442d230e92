"""Keyword policy: what an inbound SMS text means for consent (docs/consent-rules.md §2–§5).

Guarantees:

- The message and every keyword go through the same ``normalize``/``tokenize``, so matching is
  case-, accent-, width- and punctuation-insensitive and never happens inside a word
  (STOPWATCH, ENDING and CANCELLED are not keywords).
- ``Policy.classify`` never raises, is deterministic, and returns one of these shapes:
  ``opt_out`` (scope ``subaccount``/``tenant``; match ``exact``, ``phrase`` or, in conservative
  mode, ``contains``), ``opt_in`` (scope ``subaccount``; ``exact``/``phrase``), ``help`` (no scope;
  ``exact``/``phrase``), ``review`` (no scope; ``contains``), ``none`` (no scope, keyword, match).
- Mandatory keywords always apply, whatever the policy's changes say; an opt-in or help keyword
  inside a longer sentence never matches (never re-subscribe on doubt).
- Opt-out keywords and revocation phrases outrank opt-in and help keywords: under any policy,
  however its changes were stored, a text that the default policy reads as an opt-out is never
  an opt-in or a help request, nor is a text that holds one of the policy's opt-out keywords.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

import msgspec

from ledger.errors import KeywordError

__all__ = [
    "DEFAULT_KEYWORDS",
    "FILLER_WORDS",
    "MANDATORY_KEYWORDS",
    "MAX_KEYWORDS",
    "MAX_KEYWORD_LENGTH",
    "REVOCATION_PHRASES",
    "TENANT_WIDE_KEYWORDS",
    "Action",
    "Classification",
    "KeywordAction",
    "KeywordChanges",
    "Match",
    "Mode",
    "Policy",
    "Scope",
    "normalize",
    "tokenize",
    "validate_changes",
]

Action = Literal["opt_out", "opt_in", "help", "review", "none"]
"""What a message means: revoke, grant, ask for help, flag for a person, or nothing."""

Scope = Literal["subaccount", "tenant"]
"""Which subaccounts an opt-out or opt-in covers: the receiving one, or all of the tenant's."""

Match = Literal["exact", "phrase", "contains"]
"""How the keyword was found: the whole text, the text with filler words, or inside a sentence."""

Mode = Literal["strict", "standard", "conservative"]
"""How doubtful texts are treated; see ``Policy.classify``."""

KeywordAction = Literal["opt_out", "opt_in", "help"]
"""An action that a keyword list can trigger."""

_ACTIONS: Final[tuple[KeywordAction, ...]] = ("opt_out", "opt_in", "help")
# Order in which changes are applied and conflicts settled: suppress first, re-subscribe last.
_SAFETY_ORDER: Final[tuple[KeywordAction, ...]] = ("opt_out", "help", "opt_in")

# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

_APOSTROPHES: Final[Mapping[int, str]] = {0x2019: "'", 0x2018: "'", 0x02BC: "'", 0x0060: "'"}
# Default-ignorable letters (Hangul fillers) that render as nothing; the rest are Cf or M*.
_INVISIBLE_LETTERS: Final[frozenset[int]] = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0})


class _CharTable(dict[int, "int | str | None"]):
    """``str.translate`` table, filled lazily: drops marks and invisible format characters
    (zero-width space/joiners, word joiner, BOM, soft hyphen, bidi controls...), maps
    typographic apostrophes to ``'`` and keeps everything else."""

    def __missing__(self, cp: int) -> int | str | None:
        value: int | str | None
        if cp in _APOSTROPHES:
            value = _APOSTROPHES[cp]
        else:
            category = unicodedata.category(chr(cp))
            drop = category[0] == "M" or category == "Cf" or cp in _INVISIBLE_LETTERS
            value = None if drop else cp
        self[cp] = value
        return value


_CHAR_TABLE: Final = _CharTable()
# A token: letters and digits (``\w`` minus ``_``), with apostrophes only between two of them.
_TOKEN: Final = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(text: str) -> tuple[str, ...]:
    """Split ``text`` into normalised tokens, as docs/consent-rules.md §2 describes.

    Guarantees: NFKC (full-width → ASCII); zero-width and other invisible format characters
    dropped; accents stripped (ARRÊT → ``arret``); case-folded; tokens are runs of letters and
    digits, an apostrophe kept only between two of them (``don't``); everything else (spaces,
    punctuation, ``_``, emoji) only separates tokens. ``tokenize(normalize(t)) == tokenize(t)``.
    """
    if text.isascii():
        folded = text.replace("`", "'").lower()
    else:
        folded = unicodedata.normalize("NFKC", text).casefold()
        folded = unicodedata.normalize("NFD", folded).translate(_CHAR_TABLE)
        folded = unicodedata.normalize("NFKC", folded)
    return tuple(_TOKEN.findall(folded))


def normalize(text: str) -> str:
    """The normalised text: ``tokenize(text)`` joined by single spaces.

    Guarantees: idempotent (``normalize(normalize(t)) == normalize(t)``); no leading, trailing
    or doubled spaces; ``""`` when the text has no letters or digits.
    """
    return " ".join(tokenize(text))


# --------------------------------------------------------------------------------------------
# Lists
# --------------------------------------------------------------------------------------------

DEFAULT_KEYWORDS: Final[Mapping[KeywordAction, tuple[str, ...]]] = MappingProxyType(
    {
        "opt_out": (
            "STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE",
            "OPTOUT", "OPT OUT", "ARRET", "ARRETE", "ALTO", "BAJA", "PARAR", "CANCELAR",
        ),
        "opt_in": ("START", "UNSTOP", "YES", "SUBSCRIBE"),
        "help": ("HELP", "INFO", "AIDE", "AYUDA"),
    }
)  # fmt: skip
"""The default keyword lists per action, spelled as in docs/consent-rules.md §3 (upper-case, no
accents)."""

MANDATORY_KEYWORDS: Final[frozenset[str]] = frozenset(
    {"STOP", "START", "HELP", "QUIT", "END", "REVOKE", "OPT OUT", "CANCEL", "UNSUBSCRIBE"}
    | {"ARRET", "AIDE"}
)
"""Keywords that no policy can remove (FCC revocation words, CTIA STOP/START/HELP, CASL)."""

TENANT_WIDE_KEYWORDS: Final[frozenset[str]] = frozenset({"STOPALL", "STOP ALL"})
"""Opt-out keywords whose scope is the whole tenant; every other keyword's is the subaccount."""

REVOCATION_PHRASES: Final[tuple[str, ...]] = (
    "REMOVE ME", "TAKE ME OFF", "OPT ME OUT", "DO NOT TEXT", "DON'T TEXT", "DONT TEXT",
    "DO NOT CONTACT", "DON'T CONTACT", "LEAVE ME ALONE", "WRONG NUMBER", "NO MORE",
)  # fmt: skip
"""Phrases that revoke consent for the subaccount when surrounded only by filler words."""

FILLER_WORDS: Final[frozenset[str]] = frozenset({
    "please", "pls", "plz", "thanks", "thank", "you", "thx", "ty", "now", "me", "my", "your",
    "number", "this", "the", "all", "from", "list", "texting", "texts", "text", "txt",
    "messaging", "messages", "message", "msgs", "sms", "sending", "asap", "ok", "okay",
})  # fmt: skip
"""Words (normalised, lower-case) that may surround a keyword or phrase without changing it."""

MAX_KEYWORDS: Final = 200
"""The most keywords one ``KeywordChanges`` may add, across all actions."""

MAX_KEYWORD_LENGTH: Final = 64
"""The longest keyword (in characters, after trimming) a change may name."""


class KeywordChanges(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-subaccount additions to and removals from the default lists.

    Use ``validate_changes`` before storing one; ``Policy`` applies only the parts of it that
    ``validate_changes`` would accept.
    """

    add: dict[KeywordAction, list[str]] = msgspec.field(default_factory=dict)
    remove: dict[KeywordAction, list[str]] = msgspec.field(default_factory=dict)


class Classification(msgspec.Struct, frozen=True):
    """The meaning of one message under one policy.

    ``keyword`` is spelled as in the policy's list (or the revocation phrase, upper-case);
    ``policy`` is the ``<id>@<version>`` that produced it.
    """

    action: Action
    scope: Scope | None
    keyword: str | None
    match: Match | None
    policy: str


# --------------------------------------------------------------------------------------------
# Resolving changes into effective lists (shared by validation and classification)
# --------------------------------------------------------------------------------------------

_Tokens = tuple[str, ...]


def _default_tokens() -> dict[_Tokens, KeywordAction]:
    return {tokenize(k): action for action, kws in DEFAULT_KEYWORDS.items() for k in kws}


_DEFAULT_OWNER: Final[Mapping[_Tokens, KeywordAction]] = MappingProxyType(_default_tokens())
_MANDATORY_TOKENS: Final[frozenset[_Tokens]] = frozenset(map(tokenize, MANDATORY_KEYWORDS))
_TENANT_TOKENS: Final[frozenset[_Tokens]] = frozenset(map(tokenize, TENANT_WIDE_KEYWORDS))


_DEFAULT_OPT_OUT: Final[tuple[tuple[str, _Tokens], ...]] = tuple(
    (k, tokenize(k)) for k in DEFAULT_KEYWORDS["opt_out"]
)
_REVOCATION_RUNS: Final[tuple[tuple[str, _Tokens], ...]] = tuple(
    (p, tokenize(p)) for p in REVOCATION_PHRASES
)


def _contains_run(tokens: _Tokens, run: _Tokens) -> bool:
    n = len(run)
    return any(tokens[i : i + n] == run for i in range(len(tokens) - n + 1))


def _revoking_part(tokens: _Tokens, opt_out: Iterable[tuple[str, _Tokens]]) -> str | None:
    """What in ``tokens`` revokes consent, as whole tokens: an opt-out keyword of ``opt_out`` or
    of the defaults (removed or not), or a revocation phrase; ``None`` when nothing does."""
    for keyword, run in (*opt_out, *_DEFAULT_OPT_OUT):
        if _contains_run(tokens, run):
            return f"the opt-out keyword {keyword}"
    for phrase, run in _REVOCATION_RUNS:
        if _contains_run(tokens, run):
            return f"the revocation phrase {phrase}"
    return None


@dataclass(slots=True)
class _Resolved:
    add: dict[KeywordAction, list[str]]
    remove: dict[KeywordAction, list[str]]
    lists: dict[KeywordAction, list[tuple[str, _Tokens]]]


def _resolve(changes: KeywordChanges, *, strict: bool) -> _Resolved:
    """Apply ``changes`` to the defaults. ``strict``: raise on the first problem; otherwise
    skip whatever is wrong (mandatory keywords always stay, conflicts go to the safer action)."""

    def problem(message: str) -> None:
        if strict:
            raise KeywordError(message)

    def spell(raw: str, verb: str, action: KeywordAction) -> tuple[str, _Tokens] | None:
        spelled = raw.strip().upper()
        tokens = tokenize(spelled)
        if not tokens:
            problem(f"cannot {verb} {raw!r} ({action}): a keyword needs a letter or digit")
        elif len(spelled) > MAX_KEYWORD_LENGTH:
            problem(f"cannot {verb} {spelled!r} ({action}): longer than {MAX_KEYWORD_LENGTH}")
        else:
            return spelled, tokens
        return None

    added_count = sum(len(kws) for kws in changes.add.values())
    if added_count > MAX_KEYWORDS:
        problem(f"{added_count} keywords added; at most {MAX_KEYWORDS} are allowed")

    removed: dict[KeywordAction, dict[_Tokens, str]] = {a: {} for a in _ACTIONS}
    for action in _SAFETY_ORDER:
        for raw in changes.remove.get(action, ()):
            found = spell(raw, "remove", action)
            if found is None:
                continue
            spelled, tokens = found
            if tokens in _MANDATORY_TOKENS:
                problem(f"cannot remove {spelled!r} ({action}): it is a mandatory keyword")
            elif _DEFAULT_OWNER.get(tokens) != action:
                problem(f"cannot remove {spelled!r}: it is not in the default {action} list")
            else:
                removed[action].setdefault(tokens, spelled)

    lists: dict[KeywordAction, list[tuple[str, _Tokens]]] = {
        action: [
            (k, t) for k in DEFAULT_KEYWORDS[action] if (t := tokenize(k)) not in removed[action]
        ]
        for action in _ACTIONS
    }
    added_to: dict[_Tokens, KeywordAction] = {}
    added: dict[KeywordAction, list[str]] = {}
    for action in _SAFETY_ORDER:
        for raw in changes.add.get(action, ()):
            found = spell(raw, "add", action)
            if found is None:
                continue
            spelled, tokens = found
            owner = _DEFAULT_OWNER.get(tokens) or added_to.get(tokens)
            if owner is not None and owner != action:
                problem(f"cannot add {spelled!r} to {action}: it is already a keyword of {owner}")
            elif tokens in removed[action]:
                problem(f"cannot add {spelled!r} to {action}: it is also removed from it")
            elif action != "opt_out" and (inner := _revoking_part(tokens, lists["opt_out"])):
                problem(
                    f"cannot add {spelled!r} to {action}: it contains {inner}, so a reply "
                    "with it must opt out; choose a keyword without it"
                )
            elif all(t != tokens for _, t in lists[action]):
                added_to[tokens] = action
                lists[action].append((spelled, tokens))
                added.setdefault(action, []).append(spelled)
    remove = {a: list(removed[a].values()) for a in _ACTIONS if removed[a]}
    return _Resolved(add=added, remove=remove, lists=lists)


def validate_changes(changes: KeywordChanges) -> KeywordChanges:
    """Check a keyword change and return it cleaned: keywords trimmed and upper-cased, additions
    already in that action's list (after normalisation) and repeated removals dropped.

    Raises ``KeywordError`` (one line, naming the keyword) for: an empty keyword or one with no
    letter or digit; one longer than ``MAX_KEYWORD_LENGTH``; more than ``MAX_KEYWORDS``
    additions; removing a mandatory keyword or one not in that action's default list; adding a
    keyword to two actions, to an action while it is another action's keyword, or to an action
    it is also removed from; adding an opt-in or help keyword that is or holds (as whole tokens)
    an opt-out keyword — a default one, removed or not, or one this change adds — or a
    revocation phrase (``REMOVE ME`` and ``DO NOT TEXT ME`` are refused, ``UNSTOP`` is not: it
    holds no token ``stop``); the message names what it holds. Keywords are compared after
    normalisation (``OPT-OUT`` is ``OPT OUT``).
    """
    resolved = _resolve(changes, strict=True)
    return KeywordChanges(add=resolved.add, remove=resolved.remove)


# --------------------------------------------------------------------------------------------
# Compiled policy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    tokens: _Tokens
    token_set: frozenset[str]
    action: KeywordAction
    keyword: str
    scope: Scope | None
    order: int  # position in the lists, safer actions first


@dataclass(frozen=True, slots=True)
class _Compiled:
    lists: Mapping[KeywordAction, tuple[str, ...]]
    exact: Mapping[_Tokens, _Entry]
    opt_out_by_first: Mapping[str, tuple[_Entry, ...]]  # opt-out keywords, longest first
    grant_by_first: Mapping[str, tuple[_Entry, ...]]  # help, opt-in keywords, longest first


def _scope(action: KeywordAction, tokens: _Tokens) -> Scope | None:
    if action == "help":
        return None
    return "tenant" if tokens in _TENANT_TOKENS else "subaccount"


def _index(entries: Iterable[_Entry]) -> dict[str, tuple[_Entry, ...]]:
    index: dict[str, list[_Entry]] = {}
    for entry in entries:
        index.setdefault(entry.tokens[0], []).append(entry)
    return {first: tuple(group) for first, group in index.items()}


def _ranked(entries: Iterable[_Entry]) -> list[_Entry]:
    # Longest first (by tokens); ties go to the safer action, then to list order.
    return sorted(entries, key=lambda e: (-len(e.tokens), e.order))


def _compile(changes: KeywordChanges) -> _Compiled:
    lists = _resolve(changes, strict=False).lists
    listed = [(action, kw, tokens) for action in _SAFETY_ORDER for kw, tokens in lists[action]]
    entries = [
        _Entry(tokens, frozenset(tokens), action, keyword, _scope(action, tokens), order)
        for order, (action, keyword, tokens) in enumerate(listed)
    ]
    exact: dict[_Tokens, _Entry] = {}
    for entry in entries:
        exact.setdefault(entry.tokens, entry)  # first claim wins: defaults, safer action
    ranked = _ranked(entries)
    return _Compiled(
        lists=MappingProxyType({a: tuple(k for k, _ in lists[a]) for a in _ACTIONS}),
        exact=exact,
        opt_out_by_first=_index(e for e in ranked if e.action == "opt_out"),
        grant_by_first=_index(e for e in ranked if e.action != "opt_out"),
    )


_CHANGES_KEY: Final = msgspec.json.Encoder(order="deterministic")  # equal changes, one key


@functools.lru_cache(maxsize=256)
def _compiled_for(changes_json: bytes) -> _Compiled:
    return _compile(msgspec.json.decode(changes_json, type=KeywordChanges))


_REVOCATIONS: Final[tuple[tuple[_Tokens, frozenset[str], str], ...]] = tuple(
    sorted(
        ((tokenize(p), frozenset(tokenize(p)), p) for p in REVOCATION_PHRASES),
        key=lambda item: -len(item[0]),
    )
)


def _fits(tokens: _Tokens, run: _Tokens) -> bool:
    """True when ``tokens`` are one or more non-overlapping ``run``s and filler words only."""
    n, k = len(tokens), len(run)
    # reach[i]: -1 = tokens[:i] cannot be covered, 0 = covered by filler only, 1 = with a run.
    reach = [-1] * (n + 1)
    reach[0] = 0
    for i in range(n):
        here = reach[i]
        if here < 0:
            continue
        if tokens[i] in FILLER_WORDS and reach[i + 1] < here:
            reach[i + 1] = here
        if i + k <= n and tokens[i : i + k] == run:
            reach[i + k] = 1
    return reach[n] == 1


def _phrase(
    by_first: Mapping[str, tuple[_Entry, ...]],
    tokens: _Tokens,
    present: frozenset[str],
    content: frozenset[str],
) -> _Entry | None:
    groups = [group for t in present if (group := by_first.get(t))]
    if not groups:
        return None
    candidates = groups[0] if len(groups) == 1 else _ranked(e for g in groups for e in g)
    for entry in candidates:
        if content <= entry.token_set <= present and _fits(tokens, entry.tokens):
            return entry
    return None


def _revocation(tokens: _Tokens, present: frozenset[str], content: frozenset[str]) -> str | None:
    for phrase_tokens, phrase_set, phrase in _REVOCATIONS:
        if content <= phrase_set <= present and _fits(tokens, phrase_tokens):
            return phrase
    return None


def _opt_out_inside(compiled: _Compiled, tokens: _Tokens) -> _Entry | None:
    best: _Entry | None = None
    for i, token in enumerate(tokens):
        for entry in compiled.opt_out_by_first.get(token, ()):
            if tokens[i : i + len(entry.tokens)] == entry.tokens:
                if best is None or len(entry.tokens) > len(best.tokens):
                    best = entry
                break
    return best


class Policy(msgspec.Struct, frozen=True, dict=True):
    """A subaccount's keyword policy: an id, a version, a mode and changes to the default lists.

    Any change to the lists or the mode must come with a new ``version``; classifications name
    the policy as ``<id>@<version>``. Parts of ``changes`` that ``validate_changes`` would refuse
    are skipped, keyword by keyword: mandatory keywords always apply, a keyword stays with the
    action whose default it is, one added to two actions goes to the safer one (opt_out, then
    help, then opt_in), and an opt-in or help keyword that holds an opt-out keyword or a
    revocation phrase (as stored before ``validate_changes`` refused them) never applies. So
    whatever ``changes`` say, a text that the default policy reads as an opt-out is never read
    as an opt-in or a help request.

    The lists are compiled once, when the policy is built or decoded (and shared by equal
    ``changes``); only the fields above are encoded, compared and hashed.
    """

    id: str = "default"
    version: int = 1
    mode: Mode = "standard"
    changes: KeywordChanges = KeywordChanges()

    @property
    def name(self) -> str:
        """``<id>@<version>``, as recorded in every classification."""
        return f"{self.id}@{self.version}"

    def __post_init__(self) -> None:
        self._compiled()

    def _compiled(self) -> _Compiled:
        cache = self.__dict__
        compiled: _Compiled | None = cache.get("_compiled_lists")
        if compiled is None:  # a shallow copy keeps the fields, not the cache
            compiled = cache["_compiled_lists"] = _compiled_for(_CHANGES_KEY.encode(self.changes))
        return compiled

    def keywords(self) -> Mapping[KeywordAction, tuple[str, ...]]:
        """The effective lists per action: defaults (minus removals), then additions, each
        keyword once (by normalised form), spelled as listed (additions trimmed, upper-case)."""
        return self._compiled().lists

    def classify(self, text: str) -> Classification:
        """Classify one message text; never raises.

        Rules, first that applies wins (docs/consent-rules.md §4): 1 *exact* — the tokens equal a
        keyword; 2 *phrase* — one keyword (the longest that fits), possibly repeated, among filler
        words; 3 a revocation phrase among filler words → opt_out (subaccount); 4 *contains* — an
        opt-out keyword anywhere (the longest, then the first) → ``review``, or ``opt_out`` in
        conservative mode; 5 ``none``. Strict mode applies rule 1 only, then ``review`` if an
        opt-out keyword is anywhere in the text, else ``none``.

        Opt-out ranks first: in rule 2 an opt-out keyword that fits wins over any opt-in or help
        keyword, a revocation phrase (rule 3) wins over them too, and an opt-in or help keyword
        never matches a text that holds an opt-out keyword (such a text goes on to rule 4).
        """
        compiled = self._compiled()
        tokens = tokenize(text)
        entry = compiled.exact.get(tokens)
        if entry is not None:
            return self._result(entry.action, entry.scope, entry.keyword, "exact")
        inside = _opt_out_inside(compiled, tokens)
        if self.mode != "strict" and tokens:
            present = frozenset(tokens)
            content = present - FILLER_WORDS
            if inside is not None:  # an opt-out keyword can only fit where one is inside
                entry = _phrase(compiled.opt_out_by_first, tokens, present, content)
                if entry is not None:
                    return self._result(entry.action, entry.scope, entry.keyword, "phrase")
            phrase = _revocation(tokens, present, content)
            if phrase is not None:
                return self._result("opt_out", "subaccount", phrase, "phrase")
            if inside is None:
                entry = _phrase(compiled.grant_by_first, tokens, present, content)
                if entry is not None:
                    return self._result(entry.action, entry.scope, entry.keyword, "phrase")
        entry = inside
        if entry is None:
            return self._result("none", None, None, None)
        if self.mode == "conservative":
            return self._result("opt_out", entry.scope, entry.keyword, "contains")
        return self._result("review", None, entry.keyword, "contains")

    def _result(
        self, action: Action, scope: Scope | None, keyword: str | None, match: Match | None
    ) -> Classification:
        return Classification(action, scope, keyword, match, self.name)
