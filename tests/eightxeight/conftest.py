"""Shared set-up of the 8x8 round-trip tests: a running fake of 8x8."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.eightxeight.fake import FakeEightByEight

API_KEY = "test-8x8-api-key-0123456789"


@pytest.fixture
def fake() -> Iterator[FakeEightByEight]:
    server = FakeEightByEight(api_key=API_KEY, timeout_hold=1.5).start()
    yield server
    server.stop()
