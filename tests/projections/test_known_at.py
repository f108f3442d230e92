"""The one reading of ``known_at`` (API and CLI): a bounded ASCII position, or an RFC 3339 time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import InvalidInput
from projections.known_at import MAX_DIGITS, parse_known_at
from projections.ledger import ConsentLedger


@given(st.text(max_size=30) | st.from_regex(r"[0-9]{1,30}", fullmatch=True))
def test_any_text_is_a_position_a_time_or_invalid_input(text: str) -> None:
    try:
        parsed = parse_known_at(text)
    except InvalidInput:
        return  # never another exception: no 500, no traceback
    if isinstance(parsed, int):
        digits = text.strip()
        assert digits.isascii()
        assert digits.isdigit()
        assert len(digits) <= MAX_DIGITS
        assert parsed == int(digits)
    else:
        assert parsed is not None
        assert parsed.endswith("Z")


@pytest.mark.parametrize("text", ["²", "١٢", "9" * 4301, "9" * (MAX_DIGITS + 1), "+5", "1_0"])
def test_what_python_would_read_as_a_number_is_not_a_position(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_known_at(text)


def test_the_largest_position_is_accepted() -> None:
    assert parse_known_at("9" * MAX_DIGITS) == int("9" * MAX_DIGITS)
    assert parse_known_at(" 007 ") == 7


def test_positions_are_checked_against_the_log_and_future_times_noted(
    ledger: ConsentLedger,
) -> None:
    ledger.configure_subaccount("default", "ACME_MKT", actor="test")
    assert ledger.known_at(None).position is None
    assert ledger.known_at("1").position == 1
    assert ledger.known_at("0").position == 0
    with pytest.raises(InvalidInput, match="the newest is 1"):
        ledger.known_at("2")
    future = ledger.known_at("2999-01-01")
    assert (future.asked, future.position) == ("2999-01-01T00:00:00.000Z", None)
    assert future.note is not None
    assert "in the future" in future.note
    past = ledger.known_at("2000-01-01T00:00:00Z")
    assert (past.position, past.note) == (0, None)
