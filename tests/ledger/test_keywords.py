"""Keyword policy: the behaviour docs/consent-rules.md §2–§5 promises for inbound message texts."""

from __future__ import annotations

import copy

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import KeywordError
from ledger.keywords import (
    DEFAULT_KEYWORDS,
    FILLER_WORDS,
    MANDATORY_KEYWORDS,
    REVOCATION_PHRASES,
    TENANT_WIDE_KEYWORDS,
    Classification,
    KeywordChanges,
    Mode,
    Policy,
    normalize,
    tokenize,
    validate_changes,
)

DEFAULT = Policy()
MODES: tuple[Mode, ...] = ("strict", "standard", "conservative")


def classify(text: str, mode: Mode = "standard") -> Classification:
    return Policy(mode=mode).classify(text)


def assert_valid(result: Classification, policy: Policy) -> None:
    """Every classification has one of the shapes the module docstring promises."""
    assert result.policy == policy.name
    if result.action == "none":
        assert (result.scope, result.keyword, result.match) == (None, None, None)
        return
    assert result.keyword
    assert result.keyword == result.keyword.strip().upper()
    if result.action == "review":
        assert result.scope is None
        assert result.match == "contains"
    elif result.action == "opt_out":
        assert result.scope in ("subaccount", "tenant")
        assert result.match in ("exact", "phrase", "contains")
        if result.match == "contains":
            assert policy.mode == "conservative"
    elif result.action == "opt_in":
        assert result.scope == "subaccount"
        assert result.match in ("exact", "phrase")
    else:
        assert result.action == "help"
        assert result.scope is None
        assert result.match in ("exact", "phrase")
    if result.match != "contains" and result.keyword not in REVOCATION_PHRASES:
        assert result.action != "review"
        assert result.keyword in policy.keywords()[result.action]


# --------------------------------------------------------------------------------------------
# The table in the brief (standard mode, default policy)
# --------------------------------------------------------------------------------------------

TABLE = [
    *[(t, "opt_out", "subaccount") for t in ("STOP", "stop", " Stop. ", "STOP!!", "ＳＴＯＰ")],
    *[
        (t, "opt_out", "subaccount")
        for t in ("Stop please", "please stop texting me", "unsubscribe me", "Opt out", "OPT-OUT")
    ],
    ("STOPALL", "opt_out", "tenant"),
    ("stop all", "opt_out", "tenant"),
    *[(t, "opt_out", "subaccount") for t in ("Arrêt", "ALTO", "remove me", "leave me alone")],
    ("start", "opt_in", "subaccount"),
    ("UNSTOP", "opt_in", "subaccount"),
    ("help", "help", None),
    ("AIDE", "help", None),
    ("can you stop the delivery at 5?", "review", None),
    *[(t, "none", None) for t in ("STOPWATCH", "Thanks!", "", "I need help")],
]


@pytest.mark.parametrize(("text", "action", "scope"), TABLE)
def test_table(text: str, action: str, scope: str | None) -> None:
    result = DEFAULT.classify(text)
    assert (result.action, result.scope) == (action, scope)
    assert_valid(result, DEFAULT)


@pytest.mark.parametrize(
    ("text", "keyword", "match"),
    [
        ("STOP", "STOP", "exact"),
        (" Stop. ", "STOP", "exact"),
        ("ＳＴＯＰ", "STOP", "exact"),
        ("Arrêt", "ARRET", "exact"),
        ("arrête", "ARRETE", "exact"),
        ("OPT-OUT", "OPT OUT", "exact"),
        ("optout", "OPTOUT", "exact"),
        ("stop all", "STOP ALL", "exact"),
        ("STOPALL", "STOPALL", "exact"),
        ("¡ALTO!", "ALTO", "exact"),
        ("stop 🛑", "STOP", "exact"),
        ("ST\u200bOP", "STOP", "exact"),
        ("\ufeffSTOP\u00ad", "STOP", "exact"),
        ("'STOP'", "STOP", "exact"),
        ("Stop please", "STOP", "phrase"),
        ("please stop texting me", "STOP", "phrase"),
        ("STOP STOP", "STOP", "phrase"),
        ("stop. STOP! stop", "STOP", "phrase"),
        ("unsubscribe me", "UNSUBSCRIBE", "phrase"),
        ("stop all please", "STOP ALL", "phrase"),
        ("help me", "HELP", "phrase"),
        ("START please", "START", "phrase"),
        ("remove me", "REMOVE ME", "phrase"),
        ("take me off your list", "TAKE ME OFF", "phrase"),
        ("do not text me", "DO NOT TEXT", "phrase"),
        ("Don’t text me!", "DON'T TEXT", "phrase"),
        ("dont text me", "DONT TEXT", "phrase"),
        ("no more texts please", "NO MORE", "phrase"),
        ("Wrong number", "WRONG NUMBER", "phrase"),
        ("can you stop the delivery at 5?", "STOP", "contains"),
    ],
)
def test_keyword_spelling_and_match(text: str, keyword: str, match: str) -> None:
    result = DEFAULT.classify(text)
    assert (result.keyword, result.match) == (keyword, match)


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ("stop all please", "tenant"),
        ("please STOP ALL messages", "tenant"),
        ("Stop-All", "tenant"),
        ("stopall now", "tenant"),
        ("stop texting all", "subaccount"),
        ("stop my number", "subaccount"),
    ],
)
def test_opt_out_scope(text: str, scope: str) -> None:
    result = DEFAULT.classify(text)
    assert (result.action, result.scope) == ("opt_out", scope)


@pytest.mark.parametrize(
    "text",
    ["STOPWATCH", "ENDING", "CANCELLED", "unstoppable", "Thanks!", "", "   ", "🛑"],
)
def test_never_a_match_inside_a_word(text: str) -> None:
    for mode in MODES:
        assert classify(text, mode).action == "none"


@pytest.mark.parametrize(
    "text",
    ["I need help", "can I start tomorrow?", "yes I think so but not sure", "help wanted"],
)
def test_opt_in_and_help_inside_a_sentence_are_none(text: str) -> None:
    for mode in MODES:
        assert classify(text, mode).action == "none"


def test_underscore_separates_words() -> None:
    assert DEFAULT.classify("stop_all").keyword == "STOP ALL"
    assert DEFAULT.classify("stop_watch").action == "review"


def test_two_different_keywords_are_not_a_phrase() -> None:
    # Rule 2 needs one keyword (possibly repeated); a mix falls to rule 4.
    assert DEFAULT.classify("stop end").action == "review"
    assert DEFAULT.classify("start stop").action == "review"


# --------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "strict", "standard", "conservative"),
    [
        ("STOP", "opt_out", "opt_out", "opt_out"),
        ("stop please", "review", "opt_out", "opt_out"),
        ("remove me", "none", "opt_out", "opt_out"),
        ("can you stop the delivery at 5?", "review", "review", "opt_out"),
        ("start", "opt_in", "opt_in", "opt_in"),
        ("start please", "none", "opt_in", "opt_in"),
        ("help me", "none", "help", "help"),
        ("I need help", "none", "none", "none"),
        ("STOPWATCH", "none", "none", "none"),
    ],
)
def test_modes(text: str, strict: str, standard: str, conservative: str) -> None:
    assert [classify(text, m).action for m in MODES] == [strict, standard, conservative]


def test_contains_in_each_mode() -> None:
    strict = classify("can you stop the delivery at 5?", "strict")
    assert (strict.scope, strict.keyword, strict.match) == (None, "STOP", "contains")
    conservative = classify("can you stop the delivery at 5?", "conservative")
    assert (conservative.scope, conservative.keyword, conservative.match) == (
        "subaccount",
        "STOP",
        "contains",
    )


def test_contains_prefers_the_longest_keyword() -> None:
    result = classify("please stop all of the deliveries", "conservative")
    assert (result.action, result.scope, result.keyword) == ("opt_out", "tenant", "STOP ALL")
    assert classify("I said quit it, stop all of it").keyword == "STOP ALL"


def test_contains_takes_the_first_of_equal_length() -> None:
    assert DEFAULT.classify("I want to cancel, not to end it").keyword == "CANCEL"


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("ARRÊT", "arret"),
        ("ＳＴＯＰ", "stop"),
        ("OPT-OUT", "opt out"),
        ("¡ALTO!", "alto"),
        ("stop 🛑", "stop"),
        ("S\u200bT\u200cO\u200dP\u2060", "stop"),
        ("\ufeffst\u00adop", "stop"),
        ("'STOP'", "stop"),
        ("don't", "don't"),
        ("Don’t ‘stop’", "don't stop"),
        ("DONʼT", "don't"),
        ("don`t", "don't"),
        ("rock 'n' roll", "rock n roll"),
        ("stop_all", "stop all"),
        ("  Stop,\n\tplease!!  ", "stop please"),
        ("Straße", "strasse"),
        ("", ""),
        ("?!", ""),
    ],
)
def test_normalize(text: str, normalised: str) -> None:
    assert normalize(text) == normalised
    assert tokenize(text) == tuple(normalised.split())


@settings(max_examples=500)
@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert tokenize(once) == tokenize(text)
    assert once == once.strip()
    assert "  " not in once


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

VOCAB = sorted(
    {token for kws in DEFAULT_KEYWORDS.values() for k in kws for token in tokenize(k)}
    | FILLER_WORDS
    | {token for p in REVOCATION_PHRASES for token in tokenize(p)}
    | {"stopwatch", "delivery", "can", "i", "need", "5", "ending", "why"}
)
SEPARATORS = [" ", "  ", ", ", ". ", "-", "_", "!\n", " 🛑 ", "/", "\u200b ", "?"]
word_salad = st.lists(
    st.tuples(st.sampled_from(VOCAB), st.sampled_from(SEPARATORS)), max_size=8
).map(lambda pairs: "".join(word + sep for word, sep in pairs))
any_text = st.one_of(st.text(), word_salad)


@settings(max_examples=400)
@given(any_text, st.sampled_from(MODES))
def test_classification_is_always_a_valid_combination(text: str, mode: Mode) -> None:
    policy = Policy(mode=mode)
    assert_valid(policy.classify(text), policy)


@settings(max_examples=300)
@given(any_text)
def test_modes_only_widen_opt_out(text: str) -> None:
    strict, standard, conservative = (classify(text, m) for m in MODES)
    if strict.action == "opt_out":
        assert standard.action == "opt_out"
    if standard.action == "opt_out":
        assert conservative.action == "opt_out"
    if standard.action == "review":
        assert conservative.action == "opt_out"
        assert strict.action == "review"


@settings(max_examples=300)
@given(any_text, st.sampled_from(MODES))
def test_opt_in_never_when_an_opt_out_keyword_is_present(text: str, mode: Mode) -> None:
    if classify(text, mode).action == "opt_in":
        tokens = tokenize(text)
        for keyword in DEFAULT_KEYWORDS["opt_out"]:
            run = tokenize(keyword)
            windows = (tokens[i : i + len(run)] for i in range(len(tokens)))
            assert run not in windows


MANDATORY_OPT_OUT = sorted(MANDATORY_KEYWORDS & set(DEFAULT_KEYWORDS["opt_out"]))
NOISE = st.text(alphabet=" .,!?¡¿*\"'()-_~\n\t🛑✋\u200b\ufeff", max_size=4)


@st.composite
def disguised(draw: st.DrawFn, keyword: str) -> str:
    """``keyword`` with random case, full-width letters, accents, invisibles and punctuation."""
    out = [draw(NOISE)]
    for i, word in enumerate(keyword.split()):
        if i:
            out.append(draw(st.sampled_from([" ", "-", "_", " - ", ".", "\n", "/"])))
        for ch in word:
            ch = draw(st.sampled_from([ch.upper(), ch.lower()]))
            if draw(st.booleans()):
                ch = chr(ord(ch) - 0x21 + 0xFF01)  # full-width form
            out.append(ch + draw(st.sampled_from(["", "", "\u0301", "\u0308", "\u200b", "\u00ad"])))
    out.append(draw(NOISE))
    return "".join(out)


@settings(max_examples=300)
@given(st.sampled_from(MANDATORY_OPT_OUT).flatmap(lambda k: st.tuples(st.just(k), disguised(k))))
def test_mandatory_opt_out_is_opt_out_in_every_mode(case: tuple[str, str]) -> None:
    keyword, text = case
    assert tokenize(text) == tokenize(keyword)
    for mode in MODES:
        result = classify(text, mode)
        assert (result.action, result.scope, result.keyword, result.match) == (
            "opt_out",
            "subaccount",
            keyword,
            "exact",
        )


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


def test_policy_name() -> None:
    assert DEFAULT.name == "default@1"
    assert DEFAULT.classify("stop").policy == "default@1"
    custom = Policy(id="acme-mkt", version=7)
    assert custom.name == "acme-mkt@7"
    assert custom.classify("nothing here").policy == "acme-mkt@7"


def test_default_lists() -> None:
    assert dict(DEFAULT.keywords()) == dict(DEFAULT_KEYWORDS)
    assert "OPT OUT" in DEFAULT_KEYWORDS["opt_out"]
    assert {"ARRET", "STOP ALL"} <= set(DEFAULT_KEYWORDS["opt_out"])
    assert set(TENANT_WIDE_KEYWORDS) == {"STOPALL", "STOP ALL"}
    assert MANDATORY_KEYWORDS.issubset(k for kws in DEFAULT_KEYWORDS.values() for k in kws)


def test_added_keywords_match_after_normalisation() -> None:
    changes = validate_changes(
        KeywordChanges(add={"opt_out": [" pare ", "no más"], "opt_in": ["Sí"], "help": ["?SOS"]})
    )
    policy = Policy(id="acme", version=2, changes=changes)
    assert policy.keywords()["opt_out"][-2:] == ("PARE", "NO MÁS")
    cases = [
        ("Pare!", "opt_out", "PARE", "exact"),
        ("PARE por favor", "review", "PARE", "contains"),
        ("pare please", "opt_out", "PARE", "phrase"),
        ("No mas", "opt_out", "NO MÁS", "exact"),
        ("si", "opt_in", "SÍ", "exact"),
        ("sos", "help", "?SOS", "exact"),
    ]
    for text, action, keyword, match in cases:
        result = policy.classify(text)
        assert (result.action, result.keyword, result.match, result.policy) == (
            action,
            keyword,
            match,
            "acme@2",
        )
    assert policy.classify("pare").scope == "subaccount"
    assert DEFAULT.classify("pare").action == "none"


def test_removed_keywords_stop_matching() -> None:
    changes = KeywordChanges(remove={"opt_in": ["yes"], "opt_out": ["Alto"], "help": ["INFO"]})
    policy = Policy(changes=validate_changes(changes))
    assert "YES" not in policy.keywords()["opt_in"]
    assert policy.classify("yes").action == "none"
    assert policy.classify("ALTO").action == "none"
    assert policy.classify("info").action == "none"
    assert policy.classify("stop").action == "opt_out"
    assert DEFAULT.classify("yes").action == "opt_in"


def test_policy_decodes_from_json() -> None:
    raw = b'{"id":"acme","version":3,"mode":"strict","changes":{"add":{"opt_out":["PARE"]}}}'
    policy = msgspec.json.decode(raw, type=Policy)
    assert policy.classify("pare").keyword == "PARE"
    assert policy.classify("pare please").action == "review"
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"add":{},"extra":1}', type=KeywordChanges)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"add":{"unsubscribe":["X"]}}', type=KeywordChanges)


def test_unvalidated_changes_never_weaken_mandatory_keywords() -> None:
    changes = KeywordChanges(
        add={"opt_in": ["STOP", "NO STOP"], "help": ["yes"]},
        remove={"opt_out": ["STOP", "nonsense", ""], "help": ["HELP"]},
    )
    policy = Policy(changes=changes)
    assert policy.classify("stop").action == "opt_out"
    assert policy.classify("help").action == "help"
    assert policy.classify("yes").action == "opt_in"
    assert policy.classify("no stop").action == "review"
    assert "STOP" not in policy.keywords()["opt_in"]


def test_keyword_added_to_two_actions_goes_to_the_safer_one_when_unvalidated() -> None:
    policy = Policy(changes=KeywordChanges(add={"opt_in": ["GO"], "opt_out": ["GO"]}))
    assert policy.classify("go").action == "opt_out"


# --------------------------------------------------------------------------------------------
# validate_changes
# --------------------------------------------------------------------------------------------


def test_validate_changes_cleans_keywords() -> None:
    changes = KeywordChanges(
        add={"opt_out": [" pare ", "PARE", "Opt-Out", "stop"], "help": ["sos"]},
        remove={"opt_in": ["yes", "YES "]},
    )
    assert validate_changes(changes) == KeywordChanges(
        add={"opt_out": ["PARE"], "help": ["SOS"]}, remove={"opt_in": ["YES"]}
    )
    assert validate_changes(KeywordChanges()) == KeywordChanges()


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        (KeywordChanges(remove={"opt_out": ["stop"]}), "STOP"),
        (KeywordChanges(remove={"opt_out": ["Opt-Out"]}), "OPT-OUT"),
        (KeywordChanges(remove={"help": ["aide"]}), "AIDE"),
        (KeywordChanges(remove={"opt_in": ["START"]}), "START"),
        (KeywordChanges(add={"opt_out": [""]}), "''"),
        (KeywordChanges(add={"opt_out": ["   "]}), "'   '"),
        (KeywordChanges(add={"help": ["?!"]}), "'?!'"),
        (KeywordChanges(add={"opt_in": ["🛑"]}), "🛑"),
        (KeywordChanges(add={"opt_out": ["PARE"], "opt_in": ["pare"]}), "PARE"),
        (KeywordChanges(add={"opt_in": ["STOP"]}), "STOP"),
        (KeywordChanges(add={"help": ["Opt out"]}), "OPT OUT"),
        (KeywordChanges(add={"opt_out": ["YES"]}), "YES"),
        (KeywordChanges(remove={"opt_out": ["PARE"]}), "PARE"),
        (KeywordChanges(remove={"opt_out": ["YES"]}), "YES"),
        (KeywordChanges(add={"opt_out": [f"K{i}" for i in range(201)]}), "201"),
        (KeywordChanges(add={"opt_out": ["X" * 65]}), "X" * 65),
        (KeywordChanges(add={"opt_in": ["ALTO"]}, remove={"opt_out": ["ALTO"]}), "ALTO"),
        (KeywordChanges(add={"opt_in": ["yes"]}, remove={"opt_in": ["YES"]}), "YES"),
        (KeywordChanges(add={"opt_in": ["no stop"]}), "NO STOP"),
    ],
)
def test_validate_changes_refuses(changes: KeywordChanges, named: str) -> None:
    with pytest.raises(KeywordError) as caught:
        validate_changes(changes)
    message = str(caught.value)
    assert named in message
    assert "\n" not in message


def test_validate_changes_limits_are_inclusive() -> None:
    at_limit = KeywordChanges(add={"opt_out": [f"K{i}" for i in range(200)], "help": []})
    assert len(validate_changes(at_limit).add["opt_out"]) == 200
    longest = "X" * 64
    assert validate_changes(KeywordChanges(add={"opt_out": [longest]})).add == {
        "opt_out": [longest]
    }


def test_classify_repeatedly_reuses_the_compiled_policy() -> None:
    policy = Policy(changes=KeywordChanges(add={"opt_out": ["PARE"]}))
    same = Policy(changes=KeywordChanges(add={"opt_out": ["PARE"]}))
    assert policy.keywords() is same.keywords()


# --------------------------------------------------------------------------------------------
# Additions that would re-subscribe on an opt-out
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "holds"),
    [
        (KeywordChanges(add={"opt_in": ["remove me"]}), "revocation phrase REMOVE ME"),
        (KeywordChanges(add={"opt_in": ["Do not text"]}), "revocation phrase DO NOT TEXT"),
        (KeywordChanges(add={"opt_in": ["do not text me"]}), "revocation phrase DO NOT TEXT"),
        (KeywordChanges(add={"opt_in": ["Don’t text"]}), "revocation phrase DON'T TEXT"),
        (KeywordChanges(add={"help": ["please remove me"]}), "revocation phrase REMOVE ME"),
        (KeywordChanges(add={"help": ["NO MORE"]}), "revocation phrase NO MORE"),
        (KeywordChanges(add={"opt_in": ["wrong number!"]}), "revocation phrase WRONG NUMBER"),
        (KeywordChanges(add={"opt_in": ["no stop"]}), "opt-out keyword STOP"),
        (KeywordChanges(add={"help": ["opt-out help"]}), "opt-out keyword OPT OUT"),
        (
            KeywordChanges(add={"opt_in": ["no alto"]}, remove={"opt_out": ["ALTO"]}),
            "opt-out keyword ALTO",
        ),
        (
            KeywordChanges(add={"opt_out": ["pare"], "opt_in": ["NO PARE"]}),
            "opt-out keyword PARE",
        ),
    ],
)
def test_validate_changes_refuses_opt_in_and_help_that_hold_an_opt_out(
    changes: KeywordChanges, holds: str
) -> None:
    with pytest.raises(KeywordError) as caught:
        validate_changes(changes)
    message = str(caught.value)
    assert holds in message
    assert "\n" not in message


def test_validate_changes_matches_whole_tokens_only() -> None:
    # UNSTOP holds no token "stop"; REMOVE alone is not the phrase REMOVE ME.
    changes = KeywordChanges(
        add={"opt_in": ["UNSTOP ME", "REMOVE", "TEXT ME", "SIGN ME UP"], "help": ["MORE INFO"]}
    )
    assert validate_changes(changes).add == {
        "help": ["MORE INFO"],
        "opt_in": ["UNSTOP ME", "REMOVE", "TEXT ME", "SIGN ME UP"],
    }


STORED_RESUBSCRIBERS = KeywordChanges(
    add={
        "opt_in": ["REMOVE ME", "DO NOT TEXT", "DO NOT", "REMOVE", "OUT OPT"],
        "help": ["NO MORE", "TAKE ME"],
    }
)


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("remove me", "REMOVE ME"),
        ("Remove me please", "REMOVE ME"),
        ("do not text", "DO NOT TEXT"),
        ("do not text me", "DO NOT TEXT"),
        ("no more", "NO MORE"),
        ("take me off", "TAKE ME OFF"),
    ],
)
def test_stored_additions_never_re_subscribe_a_revocation(text: str, keyword: str) -> None:
    # As an old log entry may hold it: written before validate_changes refused it.
    policy = Policy(id="acme", version=4, changes=STORED_RESUBSCRIBERS)
    result = policy.classify(text)
    assert (result.action, result.scope, result.keyword, result.match) == (
        "opt_out",
        "subaccount",
        keyword,
        "phrase",
    )
    assert policy.classify(text).policy == "acme@4"
    assert Policy(mode="conservative", changes=STORED_RESUBSCRIBERS).classify(text) == (
        Policy(mode="conservative").classify(text)
    )
    assert Policy(mode="strict", changes=STORED_RESUBSCRIBERS).classify(text).action == "none"


def test_stored_additions_that_hold_an_opt_out_are_not_in_force() -> None:
    policy = Policy(changes=STORED_RESUBSCRIBERS)
    assert policy.keywords()["opt_in"][-3:] == ("DO NOT", "REMOVE", "OUT OPT")
    assert policy.keywords()["help"][-1:] == ("TAKE ME",)
    # What they are still allowed to do: match a text that revokes nothing.
    assert policy.classify("remove").action == "opt_in"
    assert policy.classify("do not").action == "opt_in"
    assert policy.classify("take me").action == "help"


def test_opt_in_never_matches_a_text_holding_an_opt_out_keyword() -> None:
    # OUT OPT holds no OPT OUT, but repeated it does: the opt-out keyword wins.
    policy = Policy(changes=validate_changes(KeywordChanges(add={"opt_in": ["OUT OPT"]})))
    assert policy.classify("out opt").action == "opt_in"
    result = policy.classify("out opt out opt")
    assert (result.action, result.keyword, result.match) == ("review", "OPT OUT", "contains")


def test_policy_built_any_way_classifies_alike() -> None:
    raw = msgspec.json.encode(Policy(id="acme", version=2, changes=STORED_RESUBSCRIBERS))
    decoded = msgspec.json.decode(raw, type=Policy)
    copied = copy.copy(decoded)
    replaced = msgspec.structs.replace(decoded, version=3)
    assert msgspec.json.decode(raw) == {
        "id": "acme",
        "version": 2,
        "mode": "standard",
        "changes": msgspec.to_builtins(STORED_RESUBSCRIBERS),
    }
    assert decoded == copied == Policy(id="acme", version=2, changes=STORED_RESUBSCRIBERS)
    for policy in (decoded, copied, replaced):
        assert policy.classify("remove me").action == "opt_out"
        assert policy.keywords() is decoded.keywords()


ADDED_WORDS = st.lists(
    st.sampled_from([*VOCAB, "go", "x", "si", "sign", "up"]), min_size=1, max_size=3
)
any_keyword = st.one_of(
    st.sampled_from([*REVOCATION_PHRASES, *(k for kws in DEFAULT_KEYWORDS.values() for k in kws)]),
    ADDED_WORDS.map(" ".join),
    st.tuples(ADDED_WORDS, st.sampled_from(REVOCATION_PHRASES)).map(
        lambda p: " ".join([*p[0], p[1]])
    ),
)
any_changes = st.builds(
    KeywordChanges,
    add=st.dictionaries(
        st.sampled_from(["opt_out", "opt_in", "help"]), st.lists(any_keyword, max_size=4)
    ),
    remove=st.dictionaries(
        st.sampled_from(["opt_out", "opt_in", "help"]),
        st.lists(st.sampled_from([k for kws in DEFAULT_KEYWORDS.values() for k in kws])),
    ),
)


def among_fillers(pieces: list[str]) -> st.SearchStrategy[str]:
    """One to five of ``pieces`` and filler words, in any order."""
    words = st.sampled_from(pieces) if pieces else st.nothing()
    fillers = st.sampled_from(sorted(FILLER_WORDS))
    return st.lists(st.one_of(words, fillers), min_size=1, max_size=5).map(" ".join)


@st.composite
def policy_and_text(draw: st.DrawFn) -> tuple[Policy, str]:
    """A policy from arbitrary (unvalidated) changes, and a text often built from its
    additions, the revocation phrases and the default opt-out keywords among filler words."""
    changes = draw(any_changes)
    policy = Policy(mode=draw(st.sampled_from(MODES)), changes=changes)
    added = [k for kws in changes.add.values() for k in kws]
    revoking = [*REVOCATION_PHRASES, *DEFAULT_KEYWORDS["opt_out"]]
    text = draw(st.one_of(word_salad, among_fillers(added), among_fillers(added + revoking)))
    return policy, text


def holds_run(text: str, keyword: str) -> bool:
    tokens, run = tokenize(text), tokenize(keyword)
    return any(tokens[i : i + len(run)] == run for i in range(len(tokens) - len(run) + 1))


@settings(max_examples=300)
@given(policy_and_text())
def test_no_policy_reads_an_opt_out_as_an_opt_in_or_help(case: tuple[Policy, str]) -> None:
    policy, text = case
    result = policy.classify(text)
    assert_valid(result, policy)
    if DEFAULT.classify(text).action in ("opt_out", "review"):
        assert result.action not in ("opt_in", "help")
    if result.action in ("opt_in", "help"):
        opt_outs = {*DEFAULT_KEYWORDS["opt_out"], *policy.keywords()["opt_out"]}
        assert not any(holds_run(text, k) for k in opt_outs)
