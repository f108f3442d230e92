"""A printable HTML rendering of an evidence bundle, for a compliance officer.

Guarantees: the page is one self-contained document (inline CSS, no scripts, fonts, images or
links to fetch); every value taken from the bundle is HTML-escaped, and every bidirectional
formatting character in it (which could reorder what a reader sees, e.g. make a number read
backwards) is shown as a visible mark such as ``<U+202E>`` instead of being obeyed; it shows
the decision, the statement of what the proofs do and do not show, the timeline, every entry,
the evidence excerpts, the checkpoint and verifier key, and how to verify the JSON bundle. The
page is a
rendering: only the JSON bundle is verified (``consent-ledger verify-bundle``), and the page
says so.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from projections.evidence import Bundle, BundleEntry

EXCERPT = 600
"""Most characters of a raw request body shown on the page (the bundle holds all of it)."""

_CSS = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.4 "Helvetica Neue", Arial, "Liberation Sans", sans-serif; color: #111;
       margin: 0 auto; max-width: 190mm; padding: 8mm 0; }
h1 { font-size: 18pt; margin: 0 0 2mm; }
h2 { font-size: 12.5pt; margin: 7mm 0 2mm; border-bottom: 1.5pt solid #333; padding-bottom: 1mm; }
p { margin: 1.5mm 0; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.5mm 5mm; margin: 2mm 0; }
.facts dt { font-weight: bold; } .facts dd { margin: 0; }
.verdict { border: 2pt solid #111; padding: 3mm 4mm; margin: 4mm 0; break-inside: avoid; }
.verdict .big { font-size: 16pt; font-weight: bold; letter-spacing: 0.02em; }
.verdict.deny { border-color: #8b0000; background: #fbeaea; }
.verdict.allow { border-color: #14532d; background: #eaf6ee; }
.statement { border-left: 3pt solid #555; background: #f3f3f3; padding: 2mm 4mm; }
table { border-collapse: collapse; width: 100%; font-size: 8.5pt; margin: 2mm 0; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
th, td { border: 0.6pt solid #888; padding: 1mm 1.5mm; text-align: left; vertical-align: top; }
th { background: #e6e6e6; }
code, pre, .hash { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 8pt; }
.hash { word-break: break-all; }
td.hash { font-size: 7pt; } td.time { white-space: nowrap; font-size: 7.5pt; }
pre { white-space: pre-wrap; word-break: break-all; background: #f6f6f6;
      border: 0.6pt solid #bbb; padding: 2mm; margin: 1mm 0; }
.evidence { border: 0.6pt solid #bbb; padding: 2mm 3mm; margin: 2mm 0; break-inside: avoid; }
.muted { color: #555; }
.ctl { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.85em;
       color: #8b0000; background: #fbeaea; border: 0.5pt solid #8b0000; padding: 0 0.5mm; }
@media print { body { padding: 0; } .verdict, th, .statement, pre {
  -webkit-print-color-adjust: exact; print-color-adjust: exact; } }
"""


def render_html(bundle: Bundle) -> str:
    """The bundle as one printable HTML page (UTF-8 text)."""
    title = f"Consent evidence: {bundle.msisdn} / {bundle.subaccount}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title, marks=False)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _facts(bundle),
        _verdict(bundle),
        _statement(bundle),
        _timeline(bundle),
        _entries(bundle),
        _evidence(bundle),
        _checkpoint(bundle),
        _how_to_verify(bundle),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


# -- sections -----------------------------------------------------------------------------------


def _facts(bundle: Bundle) -> str:
    rows = [
        ("Number", bundle.msisdn),
        ("Subaccount", bundle.subaccount),
        ("Tenant", bundle.tenant),
        ("Generated at", bundle.generated_at),
        ("Log size covered", f"{bundle.checkpoint.size} entries (signed checkpoint)"),
        ("Entries in this bundle", str(len(bundle.entries))),
        ("Format", bundle.format),
    ]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    return f'<dl class="facts">{items}</dl>'


def _verdict(bundle: Bundle) -> str:
    d = bundle.decision if isinstance(bundle.decision, dict) else {}
    allowed = d.get("allowed") is True
    state = str(d.get("state", "?")).replace("_", " ")
    headline = ("MAY SEND" if allowed else "MAY NOT SEND") + f" \u2014 {state}"
    return (
        f'<section class="verdict {"allow" if allowed else "deny"}">'
        f'<div class="big">{_e(headline)}</div>'
        f"<p>{_e(d.get('reason', ''))}</p>"
        f'<p class="muted">Decision for valid time {_e(d.get("at", ""))}, as known at log '
        f"position {_e(d.get('known_at', ''))} (the checkpoint's tree size).</p></section>"
    )


def _statement(bundle: Bundle) -> str:
    return (
        "<h2>What this bundle proves, and what it does not</h2>"
        f'<div class="statement"><p>{_e(bundle.statement)}</p>'
        "<p>Only the JSON bundle can be verified; this page is a rendering of it. Verify the "
        "JSON file with the command below before relying on anything shown here.</p></div>"
    )


def _timeline(bundle: Bundle) -> str:
    rows = bundle.timeline if isinstance(bundle.timeline, list) else []
    if not rows:
        return "<h2>Timeline</h2><p>No consent entry: the state is unknown at every time.</p>"
    body = "".join(
        "<tr>"
        + _cells(
            r.get("from"),
            r.get("to") or "open",
            str(r.get("state", "")).replace("_", " "),
            r.get("scope"),
            r.get("position"),
        )
        + "</tr>"
        for r in rows
        if isinstance(r, dict)
    )
    return (
        "<h2>Timeline</h2>"
        '<p class="muted">Valid time: from (inclusive) to (exclusive), as known at the '
        "checkpoint's tree size. Before the first interval the state is unknown.</p>"
        "<table><thead><tr><th>From</th><th>To</th><th>State</th><th>Scope</th>"
        f"<th>Deciding position</th></tr></thead><tbody>{body}</tbody></table>"
    )


def _entries(bundle: Bundle) -> str:
    head = (
        "<tr><th>Pos.</th><th>Type</th><th>Occurred / recorded</th><th>Method</th>"
        "<th>Actor</th><th>Keyword</th><th>Scope</th><th>Leaf hash</th></tr>"
    )
    closed = _closed_by(bundle)
    rows = "".join(_entry_row(item, closed.get(item.position)) for item in bundle.entries)
    if not rows:
        return "<h2>Entries</h2><p>The ledger holds no entry about this number here.</p>"
    return (
        "<h2>Entries</h2>"
        '<p class="muted">Every entry bearing on the number for this subaccount, the retractions '
        "and review resolutions targeting them, and the subaccount's and tenant's configuration, "
        "oldest first.</p>"
        f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"
    )


def _entry_row(item: BundleEntry, closed: str | None) -> str:
    entry = _dict(item.entry)
    event = _dict(entry.get("event"))
    notes = [*_details(event), *([closed] if closed else [])]
    if item.role != "number":
        notes.append(item.role)
    kind = _e(entry.get("type", "")) + "".join(
        f"<br><span class='muted'>{_e(n)}</span>" for n in notes
    )
    times = f"{_e(entry.get('occurred_at', ''))}<br>{_e(entry.get('recorded_at', ''))}"
    get = event.get
    return (
        f'<tr><td>{item.position}</td><td>{kind}</td><td class="time">{times}</td>'
        + _cells(get("method"), get("actor"), get("keyword"), get("scope"))
        + f'<td class="hash">{_e(item.leaf_hash)}</td></tr>'
    )


def _details(event: dict[str, Any]) -> list[str]:
    """What a reader needs beyond the columns: targets, reasons, why an opt-out is tenant-wide."""
    out = []
    kind = event.get("type")
    if kind == "entry.retracted":
        out.append(f"retracts position {event.get('position')}: {event.get('reason')}")
    elif kind == "review.resolved":
        out.append(
            f"resolves position {event.get('position')}: {event.get('action')} "
            f"— {event.get('note')}"
        )
    elif kind == "review.flagged":
        out.append(f"flagged for review: {event.get('reason')}")
    if event.get("unresolved_subaccount") is not None:
        out.append(f"subaccount {event['unresolved_subaccount']!r} not resolved: tenant-wide")
    if event.get("revoke_all"):
        out.append("tenant-wide: the tenant has revoke_all on")
    if event.get("provider_time") is not None:
        out.append(f"provider time {event['provider_time']} was in the future; replaced")
    if event.get("resolves") is not None:
        out.append(f"resolves review item {event['resolves']}")
    return out


def _closed_by(bundle: Bundle) -> dict[int, str]:
    """Position -> "retracted by …" / "resolved by …", from the bundle's own entries."""
    out: dict[int, str] = {}
    for item in bundle.entries:
        entry = _dict(item.entry)
        target = _dict(entry.get("event")).get("position")
        verb = {"entry.retracted": "retracted", "review.resolved": "resolved"}.get(
            str(entry.get("type"))
        )
        if verb and isinstance(target, int):
            out[target] = f"{verb} by position {item.position}"
    return out


def _evidence(bundle: Bundle) -> str:
    blocks = [_evidence_block(item) for item in bundle.entries if item.evidence is not None]
    if not blocks:
        return "<h2>Evidence</h2><p>No entry in this bundle carries evidence.</p>"
    return (
        "<h2>Evidence</h2>"
        '<p class="muted">What was received, as kept beside each entry. Its salted SHA-256 '
        "digest is part of the entry, so the bundle's verifier checks the evidence against it. "
        "Raw bodies are shortened here; the bundle holds them whole.</p>" + "".join(blocks)
    )


def _evidence_block(item: BundleEntry) -> str:
    ev = item.evidence
    assert ev is not None
    head = f"<p><b>Position {item.position}</b> \u2014 {_e(ev.status)}</p>"
    if ev.status != "kept" or not isinstance(ev.decoded, dict):
        return f'<div class="evidence">{head}<p>{_e(ev.note or "")}</p></div>'
    d: dict[str, Any] = ev.decoded
    lines = [
        (label, d.get(key))
        for label, key in (
            ("Message text", "text"),
            ("Profile name", "profile_name"),
            ("Remote address", "remote_addr"),
            ("Request id", "request_id"),
            ("Content type", "content_type"),
            ("API key id", "key_id"),
        )
        if d.get(key) is not None
    ]
    facts = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in lines)
    raw = d.get("raw_body")
    body = ""
    if isinstance(raw, str):
        cut = raw if len(raw) <= EXCERPT else raw[:EXCERPT] + " \u2026"
        body = f"<p>Raw request body ({len(raw)} characters):</p><pre>{_e(cut)}</pre>"
    return f'<div class="evidence">{head}<dl class="facts">{facts}</dl>{body}</div>'


def _checkpoint(bundle: Bundle) -> str:
    cp = bundle.checkpoint
    return (
        "<h2>Signed checkpoint</h2>"
        f"<p>Log <code>{_e(cp.origin)}</code>, tree size {cp.size}, root "
        f'<span class="hash">{_e(cp.root)}</span>. Each entry\'s inclusion proof (in the JSON '
        "bundle) leads from its leaf hash to this root.</p>"
        f"<pre>{_e(cp.note)}</pre>"
        f'<p>Verifier key: <span class="hash">{_e(cp.verifier_key)}</span></p>'
    )


def _how_to_verify(bundle: Bundle) -> str:
    return (
        "<h2>How to verify</h2><ol>"
        "<li>Get the log's verifier key from the operator through a channel you trust (not from "
        "this page or the bundle): <code>consent-ledger signing-key show</code> prints it.</li>"
        "<li>Run, with no database and no network:"
        "<pre>consent-ledger verify-bundle FILE --key KEY</pre>"
        "where FILE is the JSON bundle and KEY the verifier key. It checks the checkpoint "
        "signature, every inclusion proof against the signed root, that each decoded entry is "
        "the decode of its bytes, the evidence against each entry's digest, and recomputes the "
        "decision and timeline from the entries. It prints one line: OK, or the first failure."
        "</li></ol>"
        f'<p class="muted">{_e(bundle.format)} \u2014 generated {_e(bundle.generated_at)}</p>'
    )


# -- helpers ------------------------------------------------------------------------------------


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Bidirectional formatting characters: marks, embeddings, overrides and isolates."""


def _mark(match: re.Match[str]) -> str:
    return f'<span class="ctl">&lt;U+{ord(match.group()):04X}&gt;</span>'


def _plain_mark(match: re.Match[str]) -> str:
    return f"&lt;U+{ord(match.group()):04X}&gt;"


def _e(value: object, *, marks: bool = True) -> str:
    """``value`` as HTML text: escaped, bidirectional controls shown as ``<U+202E>`` (in a
    styled span, or as plain text where markup is not allowed: ``marks=False``)."""
    text = escape("" if value is None else str(value), quote=True)
    return BIDI_CONTROLS.sub(_mark if marks else _plain_mark, text)


def _cells(*values: object) -> str:
    return "".join(f"<td>{_e(v)}</td>" for v in values)
