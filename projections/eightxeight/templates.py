"""Reply templates: what a confirmation or HELP answer may say (docs/consent-rules.md,
"Replies").

Guarantees: ``validate`` accepts a text only when it fits one GSM-7 SMS segment (160 septets,
each character of the GSM 03.38 basic set one, of its extension table two), holds no URL or
web address, and no marketing word of ``MARKETING_WORDS`` (an opt-out confirmation must carry
no marketing: FCC 47 CFR 64.1200(a)(12)); otherwise it raises ``InvalidInput`` saying what to
change.
"""

from __future__ import annotations

import re
from typing import Final

from ledger.errors import InvalidInput
from ledger.keywords import tokenize

SEGMENT_SEPTETS: Final = 160
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final = frozenset("^{}\\[~]|€\f")
MARKETING_WORDS: Final = (
    "sale", "offer", "discount", "deal", "deals", "promo", "promotion", "coupon", "voucher",
    "free", "win", "winner", "prize", "bonus", "save", "buy", "shop", "order", "exclusive",
    "limited", "special", "cashback", "new",
)  # fmt: skip
"""Words a reply may not hold (docs/consent-rules.md lists them): a confirmation or HELP answer
says what happened and how to get help, nothing else."""
_URL = re.compile(
    r"(?i)\b(?:https?://|www\.)|\b[a-z0-9-]+\.(?:com|net|org|io|co|ly|me|app|info|biz|sg|uk|us)\b"
)


def septets(text: str) -> int | None:
    """The GSM-7 septets ``text`` takes, ``None`` when a character is not in GSM-7."""
    count = 0
    for ch in text:
        if ch in GSM7_BASIC:
            count += 1
        elif ch in GSM7_EXTENSION:
            count += 2
        else:
            return None
    return count


def validate(text: str, what: str) -> str:
    """``text`` when it may be sent as a ``what`` reply (see the module guarantees)."""
    text = text.strip()
    if not text:
        raise InvalidInput(f"the {what} reply is empty")
    size = septets(text)
    if size is None:
        bad = next(ch for ch in text if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION)
        raise InvalidInput(f"the {what} reply holds {bad!r}, which GSM-7 cannot send in one part")
    if size > SEGMENT_SEPTETS:
        raise InvalidInput(
            f"the {what} reply takes {size} GSM-7 characters; one SMS segment holds "
            f"{SEGMENT_SEPTETS}"
        )
    if _URL.search(text):
        raise InvalidInput(f"the {what} reply holds a web address; replies carry no links")
    found = sorted(set(tokenize(text)) & set(MARKETING_WORDS))
    if found:
        raise InvalidInput(f"the {what} reply holds marketing words ({', '.join(found)})")
    return text
