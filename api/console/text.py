"""How the console shows text it did not write: control and invisible characters made visible,
ages in words. (HTML escaping itself is the template engine's: autoescape is on everywhere.)

Guarantees: ``visible`` returns text with no C0/C1 control character (line breaks shown as a
mark and kept as a line break), no bidirectional formatting character and no zero-width
character left: each is replaced by a visible mark (``␀``…``␟``, ``␡`` or ``<U+XXXX>``), so what
a person reads is what was received.
"""

from __future__ import annotations

import re

_INVISIBLE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def _mark(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return f"<U+{code:04X}>"


def visible(text: object) -> str:
    """``text`` with every control or invisible character shown as a mark (see the module)."""
    if text is None:
        return ""
    return _INVISIBLE.sub(_mark, str(text)).replace("\n", "\u240a\n")


def age(seconds: float | None) -> str:
    """An age in words: ``45 s``, ``12 min``, ``3 h 20 min``, ``4 d 2 h``."""
    if seconds is None:
        return "—"
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"
