"""Reading an import file: CSV, TSV or JSON lines, one row at a time (docs/adopting.md).

Guarantees: rows are read as a stream (memory does not grow with the file); every row keeps its
line number and its exact text as read; a row that cannot be read (not UTF-8, malformed
quoting, not a JSON object, more columns than the header, a CSV/TSV last line without a line
end, which may be a file cut short) is yielded with the reason, never dropped; blank lines are
not rows. The first CSV/TSV line is a header when it names a known field (or a ``--map``ped
column); a first line of one value that names none starts a headerless list of opt-outs; any
other first line is refused as a whole (``InvalidInput``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from csv import reader as csv_records
from typing import BinaryIO, Literal

import msgspec

from ledger.errors import InvalidInput

Format = Literal["csv", "tsv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "tsv", "jsonl")
FIELDS = ("msisdn", "subaccount", "action", "occurred_at", "source", "text", "notice")
"""The fields a row may give (``msisdn`` required); other columns are kept in the row as read."""

_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_CONTENT_TYPES: dict[str, Format] = {
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/json": "jsonl",
}


class Row(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One row as read: its line number, its exact text, its fields (by field name), or why it
    could not be read (``column`` names the part at fault, when one is)."""

    line: int
    raw: str
    values: dict[str, str] = {}
    error: str | None = None
    column: str | None = None


def detect_format(name: str | None, head: bytes, content_type: str | None = None) -> Format:
    """The format of a file: from its name's extension, else its content type, else its first
    non-blank line (``{`` starts JSON lines; a tab, TSV; otherwise CSV)."""
    if name:
        for ext, fmt in _EXTENSIONS.items():
            if name.lower().endswith(ext):
                return fmt
    if content_type:
        typed = _CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
        if typed is not None:
            return typed
    first = next((line for line in head.lstrip(b"\xef\xbb\xbf").splitlines() if line.strip()), b"")
    if first.lstrip().startswith(b"{"):
        return "jsonl"
    return "tsv" if b"\t" in first else "csv"


def field_name(column: str) -> str:
    """A column header as compared with field names: trimmed, lower case, ``_`` for spaces and
    hyphens (``Occurred At`` -> ``occurred_at``)."""
    return column.strip().lower().replace(" ", "_").replace("-", "_")


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """``--map file_column=field`` pairs as {column (compared as ``field_name``): field}."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, field = pair.partition("=")
        field = field_name(field)
        if not sep or not column.strip():
            raise InvalidInput(f"--map {pair!r}: write it as file_column=field")
        if field not in FIELDS:
            raise InvalidInput(f"--map {pair!r}: the field must be one of {', '.join(FIELDS)}")
        mapping[field_name(column)] = field
    return mapping


def read_rows(
    stream: BinaryIO, fmt: Format, mapping: Mapping[str, str] | None = None
) -> Iterator[Row]:
    """Every row of ``stream`` (see the module guarantees)."""
    lines = _Lines(stream)
    if fmt == "jsonl":
        return _json_rows(lines, mapping or {})
    return _delimited_rows(lines, "\t" if fmt == "tsv" else ",", mapping or {})


class _Lines:
    """Lines of a binary stream, decoded, remembering those taken since the last row."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.taken: list[str] = []
        self.first = 0
        self.number = 0
        self.unterminated = False
        self.undecodable = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        data = self.stream.readline()
        if not data:
            raise StopIteration
        self.number += 1
        if not self.taken:
            self.first = self.number
        self.unterminated = not data.endswith(b"\n")
        if self.number == 1 and data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", "replace")
            self.undecodable = True
        self.taken.append(text)
        return text

    def take(self) -> tuple[int, str, bool]:
        """(first line number, exact text without its line end, whether it was UTF-8) of the
        lines taken since the last call."""
        raw = "".join(self.taken).rstrip("\r\n")
        good = not self.undecodable
        self.taken, self.undecodable = [], False
        return self.first, raw, good


_NOT_UTF8 = "the row is not UTF-8 text (save the file as UTF-8)"
_CUT = (
    "the file ends in the middle of this line (no line end): it may have been cut short; "
    "if the line is complete, end the file with a newline"
)


def _delimited_rows(lines: _Lines, delimiter: str, mapping: Mapping[str, str]) -> Iterator[Row]:
    reader = csv_records(lines, delimiter=delimiter, strict=True)
    columns: list[str] | None = None
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line, raw, _ = lines.take()
            yield Row(line=line, raw=raw, error=f"the row cannot be read as CSV: {exc}")
            continue
        line, raw, good = lines.take()
        if not cells or not any(c.strip() for c in cells):
            continue
        if columns is None:
            columns = _columns(cells, mapping)
            if columns is not None:
                continue
            columns = ["msisdn"]  # a headerless list of numbers: each line an opt-out
        yield _delimited_row(line, raw, cells, columns, good, lines.unterminated)


def _delimited_row(
    line: int, raw: str, cells: list[str], columns: list[str], good: bool, cut: bool
) -> Row:
    if not good:
        return Row(line=line, raw=raw, error=_NOT_UTF8)
    if cut:
        return Row(line=line, raw=raw, error=_CUT)
    if len(cells) > len(columns):
        return Row(
            line=line,
            raw=raw,
            error=f"the row has {len(cells)} columns, more than the header's {len(columns)}",
        )
    values = {f: c.strip() for f, c in zip(columns, cells, strict=False) if f in FIELDS}
    return Row(line=line, raw=raw, values=values)


def _columns(cells: list[str], mapping: Mapping[str, str]) -> list[str] | None:
    """The field of each column when ``cells`` is a header; ``None`` for a one-value first
    line naming no field (a headerless list); ``InvalidInput`` otherwise."""
    names = [mapping.get(field_name(c), field_name(c)) for c in cells]
    named = [n for n in names if n in FIELDS]
    if not named:
        if len(cells) == 1:
            return None
        raise InvalidInput(
            "the first line names no known column: it must be a header naming msisdn (and "
            f"any of {', '.join(FIELDS[1:])}), or map yours with --map file_column=field"
        )
    if "msisdn" not in named:
        raise InvalidInput(
            "the header names no msisdn column: add one, or map yours with --map COLUMN=msisdn"
        )
    twice = sorted({n for n in named if named.count(n) > 1})
    if twice:
        raise InvalidInput(f"the header names {', '.join(twice)} more than once")
    return names


def _json_rows(lines: _Lines, mapping: Mapping[str, str]) -> Iterator[Row]:
    decode = msgspec.json.decode
    for text in lines:
        line, raw, good = lines.take()
        if not text.strip():
            continue
        if not good:
            yield Row(line=line, raw=raw, error=_NOT_UTF8)
            continue
        try:
            document = decode(raw)
        except msgspec.DecodeError as exc:
            yield Row(line=line, raw=raw, error=f"the line is not JSON ({exc})")
            continue
        if not isinstance(document, dict):
            yield Row(line=line, raw=raw, error="the line is not a JSON object")
            continue
        yield _json_row(line, raw, document, mapping)


def _json_row(line: int, raw: str, document: dict[str, object], mapping: Mapping[str, str]) -> Row:
    values: dict[str, str] = {}
    for key, value in document.items():
        field = mapping.get(field_name(key), field_name(key))
        if field not in FIELDS or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            return Row(line=line, raw=raw, column=field, error=f"{key} must be a string")
        if field in values:
            return Row(line=line, raw=raw, column=field, error=f"{field} is given twice")
        values[field] = str(value).strip()
    return Row(line=line, raw=raw, values=values)
