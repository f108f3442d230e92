"""Phone numbers as the ledger stores them: E.164 (docs/consent-rules.md §12).

Rules:

* A number written with a leading ``+`` or ``00`` is international.
* Bare digits are read as national in the given default region if that gives a valid number of
  that region's country calling code, otherwise as international if that gives a valid number;
  if neither reading is valid the number is refused.
* Only ASCII digits, spaces, ``-``, ``.``, ``(``, ``)`` and one leading ``+`` are accepted, in at
  most ``MAX_INPUT_LENGTH`` characters. Letters are refused (no vanity numbers such as
  ``1-800-FLOWERS``), as are control characters, other whitespace and non-ASCII digits.
* Validity is phonenumbers' ``is_valid_number``; the stored form is its E.164 format, which must
  have the shape ``+`` and 7 to 15 digits, the first not ``0``.

Speed: results are memoised per ``(raw, region)`` (``CACHE_SIZE`` entries) — except in
``to_e164_many`` for inputs already in E.164 shape, whose reading is cheaper than the memo — and
the international reading of a number already in E.164 shape skips ``phonenumbers.parse``: it
is checked against rules compiled once per country calling code from phonenumbers' own metadata
(country code by prefix, possible lengths, the number-type patterns), following
``is_valid_number`` step by step. Where parsing could rewrite the number (its
national-prefix-for-parsing pattern matches), the fast path defers to the full parse. The results
are identical with or without the fast path; ``tests/ledger/test_msisdn.py`` checks that against
the full parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberDesc, PhoneNumberFormat

from ledger.errors import InvalidInput, InvalidNumber

__all__ = [
    "CACHE_SIZE",
    "MAX_INPUT_LENGTH",
    "is_canonical",
    "mask",
    "to_e164",
    "to_e164_many",
    "valid_region",
]

MAX_INPUT_LENGTH = 32
"""Longest raw input accepted, in characters (separators included)."""

CACHE_SIZE = 200_000
"""Entries in the ``(raw, region) -> result`` memo (refusals included)."""

_SHOWN_MAX = 64  # longest input quoted whole in an error message

_CANONICAL = re.compile(r"\+[1-9][0-9]{6,14}")  # [0-9], not \d: \d also matches non-ASCII digits
_CANONICAL_DIGITS = re.compile(r"[1-9][0-9]{6,14}")
_ALLOWED = frozenset("0123456789 -.()+")
_SEPARATORS = str.maketrans("", "", " -.()")
_PLUS_DIGITS = re.compile(r"\+?[0-9]+")
_ASCII_LETTER = re.compile(r"[A-Za-z]")


@dataclass(frozen=True, slots=True)
class _Refused:
    """Why an input was refused; completes the sentence "'<raw>' is ..."."""

    why: str


_EMPTY = _Refused("empty, not a phone number")
_TOO_LONG = _Refused(f"longer than {MAX_INPUT_LENGTH} characters, not a phone number")
_LETTERS = _Refused("not a phone number: it contains letters")
_BAD_CHARS = _Refused(
    "not a phone number: only digits, spaces, '-', '.', '(', ')' and a leading '+' are allowed"
)
_PLUS_PLACE = _Refused("not a phone number: '+' is only allowed once, at the start")
_NO_DIGITS = _Refused("not a phone number: it has no digits")
_INVALID_INTERNATIONAL = _Refused("not a valid international phone number")
_INVALID_NO_REGION = _Refused(
    "not a valid international phone number (no default region to read it as national; "
    "write it with '+' and the country code)"
)

_Result = str | _Refused


# --------------------------------------------------------------------------------------------
# Public API


def is_canonical(raw: str) -> bool:
    """True iff ``raw`` has E.164 shape: ``+``, then 7 to 15 ASCII digits, the first not ``0``.

    Shape only; it says nothing about validity. Every string ``to_e164`` returns is canonical.
    """
    return _CANONICAL.fullmatch(raw) is not None


def valid_region(region: str) -> str:
    """Return ``region`` upper-cased if phonenumbers knows it as a region (``"sg"`` -> ``"SG"``).

    Raises ``InvalidInput`` naming the input otherwise (``"001"``, the non-geographic entity,
    is not a region).
    """
    upper = region.upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput(
            f"{_shown(region)!r} is not a known region (an ISO 3166-1 alpha-2 code such as 'SG')"
        )
    return upper


def to_e164(raw: str, region: str | None = None) -> str:
    """Return ``raw`` as a valid E.164 number (``is_canonical`` holds), or raise.

    ``region`` is the default region for bare digits (see the module docstring); ``None`` means
    bare digits are only read as international. Raises ``InvalidNumber`` whose message quotes
    the input (inputs longer than 64 characters are quoted truncated) when the number is
    refused, and ``InvalidInput`` when ``region`` is not a known region. The result depends only
    on ``(raw, region)`` and ``to_e164(to_e164(raw, region), region)`` is the same number.
    """
    result = _resolve(raw, None if region is None else valid_region(region))
    if isinstance(result, str):
        return result
    raise InvalidNumber(_shown(raw), result.why)


def to_e164_many(raws: Sequence[str], region: str | None) -> list[str | InvalidNumber]:
    """Per-item ``to_e164`` for bulk checks: never raises for a bad number.

    Item ``i`` of the result is ``to_e164(raws[i], region)``, or the ``InvalidNumber`` that call
    would raise (a fresh, unraised instance). Raises ``InvalidInput`` only when ``region`` is not
    a known region, before looking at any number.
    """
    reg = None if region is None else valid_region(region)
    resolve, canonical, fast = _resolve, _CANONICAL.fullmatch, _international_canonical
    out: list[str | InvalidNumber] = []
    append = out.append
    for raw in raws:
        # E.164 input: its reading does not depend on the region (``_read``), and is cheaper
        # than a memo look-up, so it skips the memo (and does not crowd it out)
        result = (fast(raw[1:]) or _INVALID_INTERNATIONAL) if canonical(raw) else resolve(raw, reg)
        if isinstance(result, str):
            append(result)
        else:
            append(InvalidNumber(_shown(raw), result.why))
    return out


def number_parts(msisdn: str) -> tuple[str, str]:
    """(country calling code, national significant number) of an E.164 number, as digits
    (``"+6581968289"`` -> ``("65", "81968289")``); ``InvalidNumber`` when it is not one."""
    try:
        parsed = phonenumbers.parse(msisdn, None)
    except NumberParseException as exc:
        raise InvalidNumber(_shown(msisdn)) from exc
    return str(parsed.country_code), phonenumbers.national_significant_number(parsed)


def mask(msisdn: str) -> str:
    """Mask a number for logs: ``"+6581968289"`` -> ``"+65****8289"``.

    Keeps the ``+``, the first two digits and the last four; the middle becomes exactly four
    ``*`` whatever its length. At least three digits are always hidden, so short numbers keep
    fewer digits; input that is not ``+``/digits (after dropping separators) becomes ``"****"``.
    Never raises.
    """
    compact = msisdn.translate(_SEPARATORS)
    if _PLUS_DIGITS.fullmatch(compact) is None:
        return "****"
    plus = "+" if compact.startswith("+") else ""
    digits = compact.lstrip("+")
    n = len(digits)
    head = digits[:2] if n >= 6 else ""
    tail_len = max(0, min(4, n - len(head) - 3))
    tail = digits[n - tail_len :] if tail_len else ""
    return f"{plus}{head}****{tail}"


# --------------------------------------------------------------------------------------------
# Reading a raw string


def _shown(raw: str) -> str:
    """The input as quoted in messages: whole up to 64 characters, else truncated."""
    return raw if len(raw) <= _SHOWN_MAX else raw[: _SHOWN_MAX - 3] + "..."


def _resolve(raw: str, region: str | None) -> _Result:
    """Memoised ``_read(raw, region, fast)``; over-long inputs are refused before the memo."""
    if len(raw) > MAX_INPUT_LENGTH:
        return _TOO_LONG
    return _resolve_cached(raw, region)


@lru_cache(maxsize=CACHE_SIZE)
def _resolve_cached(raw: str, region: str | None) -> _Result:
    return _read(raw, region, _international_fast)


def _reference(raw: str, region: str | None) -> _Result:
    """The plain path: no memo, every international reading through ``phonenumbers.parse``."""
    return _read(raw, region, _international_full)


def _read(raw: str, region: str | None, international: Callable[[str], str | None]) -> _Result:
    """Apply docs/consent-rules.md §12; ``region`` is already validated and upper-case."""
    if _CANONICAL.fullmatch(raw) is not None:
        return international(raw[1:]) or _INVALID_INTERNATIONAL
    split = _split(raw)
    if isinstance(split, _Refused):
        return split
    is_international, digits = split
    if is_international:
        return international(digits) or _INVALID_INTERNATIONAL
    if region is None:
        return international(digits) or _INVALID_NO_REGION
    return (
        _national(digits, region)
        or international(digits)
        or _Refused(f"not a valid phone number in region {region} nor internationally")
    )


def _split(raw: str) -> tuple[bool, str] | _Refused:
    """Syntax only: ``(international, digits)``, with separators, ``+`` and ``00`` removed."""
    if len(raw) > MAX_INPUT_LENGTH:
        return _TOO_LONG
    if not raw.strip(" "):
        return _EMPTY
    if not _ALLOWED.issuperset(raw):
        return _LETTERS if _ASCII_LETTER.search(raw) else _BAD_CHARS
    compact = raw.translate(_SEPARATORS)  # now only digits and '+'
    if not compact.strip("+"):
        return _NO_DIGITS
    if "+" in compact[1:]:
        return _PLUS_PLACE
    if compact.startswith("+"):
        if not raw.lstrip(" (").startswith("+"):
            return _PLUS_PLACE  # e.g. "-+65 ..." or ".+65 ..."
        return True, compact[1:]
    if compact.startswith("00"):
        return (True, compact[2:]) if len(compact) > 2 else _INVALID_INTERNATIONAL
    return False, compact


def _format_if_valid(number: phonenumbers.PhoneNumber) -> str | None:
    if not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return e164 if _CANONICAL.fullmatch(e164) is not None else None


def _national(digits: str, region: str) -> str | None:
    """Bare ``digits`` read in ``region``: a valid number with its calling code, or None."""
    try:
        number = phonenumbers.parse(digits, region)
    except NumberParseException:
        return None
    if number.country_code != phonenumbers.country_code_for_valid_region(region):
        return None  # e.g. an international dialling prefix other than 00 (US "011 44 ...")
    return _format_if_valid(number)


def _international_full(digits: str) -> str | None:
    """``+digits`` through ``phonenumbers.parse`` and ``is_valid_number``: E.164 or None."""
    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        return None
    return _format_if_valid(number)


# --------------------------------------------------------------------------------------------
# Fast path: the international reading of digits already in E.164 shape.
#
# For "+" followed by ASCII digits d (first not 0, 7..15 of them) phonenumbers.parse does exactly:
#   1. country code cc = the first of d[:1], d[:2], d[:3] in COUNTRY_CODE_TO_REGION_CODE (else it
#      raises INVALID_COUNTRY_CODE); nsn = the rest (4..14 digits: no length error is possible);
#   2. with the metadata of cc's main region, strips a national prefix if its
#      national_prefix_for_parsing matches at the start of nsn -- we defer to the full parse
#      whenever that pattern matches (unless the match is empty with no group taking part, which
#      leaves nsn unchanged);
#   3. records leading zeros so that national_significant_number() == nsn, hence E.164 == "+d".
# is_valid_number then picks the region (the only one, or the first of the list whose
# leading_digits match or whose number types match) and requires the calling code to be that
# region's and nsn to match the general description and one number type (possible lengths
# first, then the pattern). _Rules replays those checks with patterns compiled once.


@dataclass(frozen=True, slots=True)
class _Desc:
    lengths: frozenset[int] | None  # None: any length (no possible_length data)
    pattern: str
    compiled: re.Pattern[str]

    def matches(self, nsn: str) -> bool:
        if self.lengths is not None and len(nsn) not in self.lengths:
            return False
        return self.compiled.fullmatch(nsn) is not None


def _desc(desc: PhoneNumberDesc | None) -> _Desc | None:
    pattern = None if desc is None else desc.national_number_pattern
    if desc is None or not pattern:
        return None  # phonenumbers: a missing or empty pattern matches nothing
    return _Desc(frozenset(desc.possible_length) or None, pattern, re.compile(pattern))


@dataclass(slots=True)
class _Rules:
    """One region's validity check: ``_number_type_helper(nsn, metadata) != UNKNOWN``."""

    general: _Desc | None
    types: tuple[_Desc, ...]
    by_length: dict[int, re.Pattern[str] | None] = field(default_factory=dict)
    """Per length: one pattern that fullmatches exactly when the general description and one of
    the number types (of that length) match; None when no number of that length is valid."""

    @classmethod
    def of(cls, md: PhoneMetadata) -> _Rules:
        descs = [
            md.premium_rate,
            md.toll_free,
            md.shared_cost,
            md.voip,
            md.personal_number,
            md.pager,
            md.uan,
            md.voicemail,
            md.fixed_line,
        ]
        if not md.same_mobile_and_fixed_line_pattern:
            descs.append(md.mobile)
        types = tuple(d for d in map(_desc, descs) if d is not None)
        return cls(_desc(md.general_desc), types)

    def has_type(self, nsn: str) -> bool:
        n = len(nsn)
        try:
            combined = self.by_length[n]
        except KeyError:
            combined = self.by_length[n] = self._for_length(n)
        return combined is not None and combined.fullmatch(nsn) is not None

    def _for_length(self, n: int) -> re.Pattern[str] | None:
        general = self.general
        if general is None or (general.lengths is not None and n not in general.lengths):
            return None
        alts = [d.pattern for d in self.types if d.lengths is None or n in d.lengths]
        if not alts:
            return None
        either = "|".join(f"(?:{a})" for a in alts)
        return re.compile(f"(?=(?:{general.pattern})\\Z)(?:{either})")


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A region in a shared calling code's list, as ``region_code_for_number`` tries it."""

    leading: re.Pattern[str] | None
    pick_rules: _Rules  # rules used to pick the region (metadata_for_region)
    valid_rules: _Rules | None  # rules used to validate in it; None: never valid


@dataclass(frozen=True, slots=True)
class _Plan:
    strip: re.Pattern[str] | None  # main region's national_prefix_for_parsing
    single: _Rules | None  # the rules when the calling code has one region (None: never valid)
    candidates: tuple[_Candidate, ...]

    def is_valid(self, nsn: str) -> bool:
        if not self.candidates:
            return self.single is not None and self.single.has_type(nsn)
        for c in self.candidates:
            if c.leading is not None:
                if c.leading.match(nsn) is None:
                    continue
            elif not c.pick_rules.has_type(nsn):
                continue
            return c.valid_rules is not None and c.valid_rules.has_type(nsn)
        return False


_PLANS: dict[int, _Plan | None] = {}
_BY_HEAD: dict[str, tuple[int, _Plan | None] | None] = {}  # first 3 digits -> (cc size, plan)
_RULES: dict[tuple[str, int | None], _Rules] = {}  # by (metadata id, calling code)


def _rules(md: PhoneMetadata) -> _Rules:
    key = (md.id, md.country_code)  # non-geographic entities all have the id "001"
    rules = _RULES.get(key)
    if rules is None:
        rules = _RULES[key] = _Rules.of(md)
    return rules


def _validation_rules(cc: int, region: str) -> _Rules | None:
    """Rules ``is_valid_number_for_region`` applies, or None if it is always False."""
    md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region.upper())
    if md is None:
        return None
    if region != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        try:
            if phonenumbers.country_code_for_valid_region(region) != cc:
                return None
        except Exception:  # unknown region: phonenumbers would say invalid too
            return None
    return _rules(md)


def _build_plan(cc: int) -> _Plan | None:
    """Compile the checks for calling code ``cc``; None means "always use the full parse"."""
    main = PhoneMetadata.metadata_for_region_or_calling_code(
        cc, phonenumbers.region_code_for_country_code(cc)
    )
    if main is None:
        return None
    strip = (
        re.compile(main.national_prefix_for_parsing) if main.national_prefix_for_parsing else None
    )
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc]
    if len(regions) == 1:
        return _Plan(strip, _validation_rules(cc, regions[0]), ())
    candidates = []
    for region in regions:
        md = PhoneMetadata.metadata_for_region(region.upper(), None)
        if md is None:
            continue
        leading = re.compile(md.leading_digits) if md.leading_digits is not None else None
        candidates.append(_Candidate(leading, _rules(md), _validation_rules(cc, region)))
    if not candidates:
        return None
    return _Plan(strip, None, tuple(candidates))


def _plan_for_head(head: str) -> tuple[int, _Plan | None] | None:
    """The calling code's length and plan for digits starting with ``head``; None: no such
    calling code (phonenumbers.parse raises INVALID_COUNTRY_CODE)."""
    known = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
    for size in (1, 2, 3):
        cc = int(head[:size])
        if cc in known:
            break
    else:
        return None
    try:
        plan = _PLANS[cc]
    except KeyError:
        plan = _PLANS[cc] = _build_plan(cc)
    return size, plan


def _international_fast(digits: str) -> str | None:
    """Same result as ``_international_full(digits)``, without parsing when that is safe."""
    if _CANONICAL_DIGITS.fullmatch(digits) is None:
        return _international_full(digits)
    return _international_canonical(digits)


def _international_canonical(digits: str) -> str | None:
    """``_international_fast`` for digits already known to have E.164 shape."""
    head = digits[:3]  # the calling code is decided by the first three digits
    try:
        found = _BY_HEAD[head]
    except KeyError:
        found = _BY_HEAD[head] = _plan_for_head(head)
    if found is None:
        return None  # parse: INVALID_COUNTRY_CODE
    size, plan = found
    if plan is None:
        return _international_full(digits)
    nsn = digits[size:]
    if plan.strip is not None:
        m = plan.strip.match(nsn)
        if m is not None and (m.end() > 0 or m.lastindex is not None):
            return _international_full(digits)  # parse might strip a national prefix
    return "+" + digits if plan.is_valid(nsn) else None
