"""Importing suppression lists (docs/adopting.md): formats, mappings, numbers, dates,
idempotency, rejects, and imported opt-ins held for review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.entries import decode_evidence
from ledger.errors import InvalidInput
from projections.import_rows import detect_format, parse_mapping
from projections.imports import (
    ImportOptions,
    ImportSummary,
    Rejected,
    RowRefused,
    file_format,
    import_file,
    source_file,
)
from projections.intake import IntakeRequest, record
from projections.ledger import ConsentLedger
from projections.resolve import resolve
from tests.conftest import ENGINES

TENANT = "default"
MKT, CARE = "ACME_MKT", "ACME_CARE"
NUMBER = "+6581968289"


@pytest.fixture
def led(ledger: ConsentLedger) -> ConsentLedger:
    ledger.configure_subaccount(TENANT, MKT, actor="test", default_region="SG")
    ledger.configure_subaccount(TENANT, CARE, actor="test")
    return ledger


def run(
    led: ConsentLedger,
    path: Path,
    text: str | bytes,
    *,
    mapping: list[str] | None = None,
    fmt: str | None = None,
    **options: object,
) -> tuple[ImportSummary, list[Rejected]]:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    source = source_file(path)
    rejected: list[Rejected] = []
    summary = import_file(
        led,
        source,
        file_format(source, fmt),
        ImportOptions(tenant=TENANT, recorded_by="cli:test", **options),  # type: ignore[arg-type]
        mapping=parse_mapping(mapping or []),
        rejected=rejected.append,
    )
    return summary, rejected


def state(led: ConsentLedger, subaccount: str, number: str = NUMBER, at: str | None = None) -> str:
    return led.decide(TENANT, subaccount, number, at=at).state


@pytest.mark.parametrize("ledger", ENGINES, indirect=True)
def test_csv_every_column(led: ConsentLedger, tmp_path: Path) -> None:
    summary, rejected = run(
        led,
        tmp_path / "old.csv",
        "msisdn,subaccount,action,occurred_at,source,text,notice\n"
        f"{NUMBER},ACME_MKT,opt_out,2024-01-02T10:00:00Z,old crm,STOP,\n"
        "+6591234567,ACME_MKT,opt_in,2024-02-01,web form,,terms v3\n",
    )
    assert rejected == []
    assert (summary.rows_read, summary.recorded, summary.format) == (2, 2, "csv")
    entries = led.history(TENANT, NUMBER)
    entry = entries[0].entry
    assert entry.type == "consent.revoked"
    assert entry.event.method == "import"  # type: ignore[union-attr]
    assert entry.event.keyword == "STOP"  # type: ignore[union-attr]
    assert entry.occurred_at == "2024-01-02T10:00:00.000Z"
    _, content = led.store.evidence([entries[0].position])[entries[0].position]
    assert content is not None
    evidence = decode_evidence(content)
    assert evidence.raw_body == f"{NUMBER},ACME_MKT,opt_out,2024-01-02T10:00:00Z,old crm,STOP,"
    assert evidence.imported is not None
    assert (evidence.imported.file, evidence.imported.row) == ("old.csv", 2)
    assert evidence.imported.sha256 == summary.sha256
    assert evidence.imported.source == "old crm"
    granted = led.history(TENANT, "+6591234567")[0].entry
    assert granted.event.notice_version == "terms v3"  # type: ignore[union-attr]
    assert state(led, MKT) == "opted_out"
    assert state(led, MKT, "+6591234567") == "opted_in"


def test_tsv_jsonl_and_headerless(led: ConsentLedger, tmp_path: Path) -> None:
    tsv, _ = run(
        led, tmp_path / "a.tsv", "msisdn\tsubaccount\n+6590000001\tACME_MKT\n", as_of="2024-01-01"
    )
    jsonl, _ = run(
        led,
        tmp_path / "b.jsonl",
        '{"msisdn": "+6590000002", "subaccount": "ACME_MKT", "occurred_at": "2024-01-01"}\n',
    )
    bare, _ = run(
        led, tmp_path / "c.txt", "+6590000003\n+6590000004\n", subaccount=MKT, as_of="2024-01-01"
    )
    assert (tsv.format, jsonl.format, bare.format) == ("tsv", "jsonl", "csv")
    assert (tsv.recorded, jsonl.recorded, bare.recorded) == (1, 1, 2)
    for n in range(1, 5):
        assert state(led, MKT, f"+659000000{n}") == "opted_out"


def test_format_detection() -> None:
    assert detect_format(None, b'{"msisdn": "1"}\n') == "jsonl"
    assert detect_format(None, b"msisdn\tsubaccount\n") == "tsv"
    assert detect_format(None, b"\xef\xbb\xbfmsisdn,subaccount\n") == "csv"
    assert detect_format("x.TSV", b"msisdn,subaccount") == "tsv"
    assert detect_format(None, b"msisdn\n", "text/tab-separated-values") == "tsv"


def test_mapping(led: ConsentLedger, tmp_path: Path) -> None:
    summary, rejected = run(
        led,
        tmp_path / "twilio.csv",
        "Phone Number,Date,Account\n+6590000011,2024-03-01,ACME_CARE\n",
        mapping=["Phone Number=msisdn", "date=occurred_at", "ACCOUNT=subaccount"],
    )
    assert (summary.recorded, rejected) == (1, [])
    assert state(led, CARE, "+6590000011") == "opted_out"
    with pytest.raises(InvalidInput, match="field must be one of"):
        parse_mapping(["Phone=number"])
    with pytest.raises(InvalidInput, match="no msisdn column"):
        run(led, tmp_path / "x.csv", "phone,subaccount\n1,ACME_MKT\n")


def test_national_forms(led: ConsentLedger, tmp_path: Path) -> None:
    text = (
        "msisdn,subaccount,occurred_at\n"
        "81968289,ACME_MKT,2024-01-01\n"  # ACME_MKT's region: SG
        "0412 345 679,ACME_CARE,2024-01-01\n"  # no region: --region
        "0412 345 678,*,2024-01-01\n"  # every subaccount: --region
    )
    summary, rejected = run(led, tmp_path / "n.csv", text)
    assert summary.recorded == 1
    assert [(r.row, r.column) for r in rejected] == [(3, "msisdn"), (4, "msisdn")]
    summary, rejected = run(led, tmp_path / "n.csv", text, region="AU")
    assert (summary.recorded, summary.duplicates, rejected) == (2, 1, [])
    assert state(led, CARE, "+61412345679") == "opted_out"
    assert state(led, CARE, "+61412345678") == "opted_out"
    assert state(led, MKT, "+61412345678") == "opted_out"  # tenant-wide


@pytest.mark.parametrize("ledger", ENGINES, indirect=True)
def test_duplicates_within_and_across_files(led: ConsentLedger, tmp_path: Path) -> None:
    row = f"{NUMBER},ACME_MKT,2024-01-01T00:00:00Z\n"
    first, _ = run(led, tmp_path / "a.csv", "msisdn,subaccount,occurred_at\n" + row * 3)
    assert (first.recorded, first.duplicates) == (1, 2)
    # another file, another spelling of the same number and time, plus one new row
    second, _ = run(
        led,
        tmp_path / "b.jsonl",
        '{"msisdn": "81968289", "subaccount": "ACME_MKT", "occurred_at": "2024-01-01"}\n'
        '{"msisdn": "81968289", "subaccount": "ACME_MKT", "occurred_at": "2024-01-02"}\n',
    )
    assert (second.recorded, second.duplicates) == (1, 1)
    again, _ = run(led, tmp_path / "a.csv", "msisdn,subaccount,occurred_at\n" + row * 3)
    assert (again.recorded, again.duplicates) == (0, 3)
    assert len(led.history(TENANT, NUMBER)) == 2


def test_dates_timezones_and_as_of(led: ConsentLedger, tmp_path: Path) -> None:
    text = (
        "msisdn,subaccount,action,occurred_at\n"
        "+6590000021,ACME_MKT,opt_out,2024-01-01\n"
        "+6590000022,ACME_MKT,opt_out,2024-01-01 09:30\n"
        "+6590000023,ACME_MKT,opt_out,\n"
        "+6590000024,ACME_MKT,opt_in,\n"
        "+6590000025,ACME_MKT,opt_out,2999-01-01\n"
        "+6590000026,ACME_MKT,maybe,2024-01-01\n"
    )
    summary, rejected = run(led, tmp_path / "d.csv", text)
    assert summary.recorded == 1  # the date alone: 00:00Z; the local time needs a zone
    assert {r.row: r.column for r in rejected} == {
        3: "occurred_at",
        4: "occurred_at",
        5: "occurred_at",
        6: "occurred_at",
        7: "action",
    }
    summary, rejected = run(
        led, tmp_path / "d.csv", text, timezone="Asia/Singapore", as_of="2023-06-01"
    )
    assert summary.recorded == 3
    assert [r.row for r in rejected] == [5, 6, 7]  # an opt-in never takes --as-of
    assert "own date" in rejected[0].reason
    local = led.history(TENANT, "+6590000022")[0].entry
    assert local.occurred_at == "2024-01-01T01:30:00.000Z"
    assumed = led.history(TENANT, "+6590000023")[0]
    assert assumed.entry.occurred_at == "2023-05-31T16:00:00.000Z"
    _, content = led.store.evidence([assumed.position])[assumed.position]
    assert content is not None
    imported = decode_evidence(content).imported
    assert imported is not None
    assert imported.date_assumed == "2023-05-31T16:00:00.000Z"


def test_unknown_subaccount_and_tenant_wide_opt_in_refused(
    led: ConsentLedger, tmp_path: Path
) -> None:
    summary, rejected = run(
        led,
        tmp_path / "s.csv",
        "msisdn,subaccount,action,occurred_at\n"
        f"{NUMBER},NOPE,opt_out,2024-01-01\n"
        f"{NUMBER},*,opt_in,2024-01-01\n"
        f"{NUMBER},,opt_out,2024-01-01\n",
    )
    assert summary.recorded == 0
    assert [(r.row, r.column) for r in rejected] == [
        (2, "subaccount"),
        (3, "subaccount"),
        (4, "subaccount"),
    ]
    summary, _ = run(
        led,
        tmp_path / "s.csv",
        f"msisdn,occurred_at\n{NUMBER},2024-01-01\n",
        tenant_wide=True,
    )
    assert summary.recorded == 1
    assert state(led, CARE) == "opted_out"


def test_file_cut_in_the_middle(led: ConsentLedger, tmp_path: Path) -> None:
    summary, rejected = run(
        led,
        tmp_path / "cut.csv",
        "msisdn,subaccount,occurred_at\n+6590000031,ACME_MKT,2024-01-01\n+6590000032,ACME_MK",
    )
    assert (summary.rows_read, summary.recorded, summary.rejected) == (2, 1, 1)
    assert rejected[0].row == 3
    assert "cut short" in rejected[0].reason
    summary, rejected = run(
        led,
        tmp_path / "cut.jsonl",
        '{"msisdn": "+6590000033", "subaccount": "ACME_MKT", "occurred_at": "2024-01-01"}\n'
        '{"msisdn": "+6590000034", "subacc',
    )
    assert (summary.recorded, summary.rejected) == (1, 1)
    assert "not JSON" in rejected[0].reason


def test_strict_and_dry_run(led: ConsentLedger, tmp_path: Path) -> None:
    text = (
        "msisdn,subaccount,occurred_at\n+6590000041,ACME_MKT,2024-01-01\nbad,ACME_MKT,2024-01-01\n"
    )
    head = led.head()
    with pytest.raises(RowRefused, match="row 3, column msisdn"):
        run(led, tmp_path / "s.csv", text, strict=True)
    dry, rejected = run(led, tmp_path / "s.csv", text, dry_run=True)
    assert (dry.valid, dry.recorded, dry.rejected, len(rejected)) == (1, 0, 1, 1)
    assert led.head() == head  # nothing recorded by either


@pytest.mark.parametrize("ledger", ENGINES, indirect=True)
def test_imported_opt_in_over_a_ledger_opt_out_is_held(led: ConsentLedger, tmp_path: Path) -> None:
    record(
        led,
        IntakeRequest(
            tenant=TENANT,
            subaccount=MKT,
            msisdn=NUMBER,
            verb="opt_out",
            text="STOP",
            occurred_at="2025-02-01T00:00:00Z",
            method="api",
        ),
    )
    rows = (
        "msisdn,subaccount,action,occurred_at,notice\n"
        f"{NUMBER},ACME_MKT,opt_in,2025-03-01,terms v4\n"  # after the STOP: held
        f"{NUMBER},ACME_MKT,opt_in,2025-01-01,\n"  # before it: changes nothing now
    )
    summary, _ = run(led, tmp_path / "in.csv", rows)
    assert (summary.recorded, summary.queued_for_review) == (1, 1)
    assert state(led, MKT) == "opted_out"
    item = led.review_queue(TENANT)[-1]
    assert item.msisdn == NUMBER
    again, _ = run(led, tmp_path / "in.csv", rows)
    assert (again.duplicates, again.queued_for_review) == (2, 0)
    done = resolve(led, TENANT, item.position, action="accept", note="checked", actor="key:x")
    assert done.opt_in is not None
    assert state(led, MKT) == "opted_in"
    granted = done.opt_in.stored.entry
    assert (granted.occurred_at, granted.event.resolves) == (
        "2025-03-01T00:00:00.000Z",
        item.position,
    )  # type: ignore[union-attr]
    assert granted.event.notice_version == "terms v4"  # type: ignore[union-attr]


def test_imported_opt_in_over_an_imported_opt_out_applies(
    led: ConsentLedger, tmp_path: Path
) -> None:
    rows = (
        "msisdn,subaccount,action,occurred_at\n"
        f"{NUMBER},ACME_MKT,opt_out,2025-01-01\n"
        f"{NUMBER},ACME_MKT,opt_in,2025-03-01\n"
    )
    summary, _ = run(led, tmp_path / "in.csv", rows)
    assert (summary.recorded, summary.queued_for_review) == (2, 0)
    assert state(led, MKT) == "opted_in"


def test_dismissed_held_opt_in_changes_nothing(led: ConsentLedger, tmp_path: Path) -> None:
    led.append([])  # nothing
    record(
        led,
        IntakeRequest(
            tenant=TENANT,
            subaccount=None,
            msisdn=NUMBER,
            verb="opt_out",
            text="STOP ALL",
            occurred_at="2025-02-01T00:00:00Z",
            method="api",
            url_subaccount=MKT,
        ),
    )
    summary, _ = run(
        led,
        tmp_path / "in.csv",
        f"msisdn,subaccount,action,occurred_at\n{NUMBER},ACME_CARE,opt_in,2025-03-01\n",
    )
    assert summary.queued_for_review == 1
    item = led.review_queue(TENANT)[-1]
    with pytest.raises(InvalidInput):
        resolve(led, TENANT, item.position, action="assign", note="n", actor="k", subaccount=MKT)
    resolve(led, TENANT, item.position, action="dismiss", note="person confirmed STOP", actor="k")
    assert state(led, CARE) == "opted_out"


@pytest.mark.slow
def test_a_large_file(led: ConsentLedger, tmp_path: Path) -> None:
    rows = "".join(f"+6581{n:06d}\n" for n in range(100_000))
    summary, rejected = run(
        led, tmp_path / "big.csv", rows, subaccount=MKT, as_of="2024-01-01", batch_rows=5000
    )
    assert (summary.rows_read, summary.recorded, rejected) == (100_000, 100_000, [])
    assert state(led, MKT, "+6581099999") == "opted_out"


def test_json_lines_bad_values(led: ConsentLedger, tmp_path: Path) -> None:
    summary, rejected = run(
        led,
        tmp_path / "j.jsonl",
        '[1, 2]\n{"msisdn": 6581968289, "subaccount": "ACME_MKT", "occurred_at": "2024-01-01"}\n'
        '{"msisdn": {"x": 1}}\n{"subaccount": "ACME_MKT"}\n'
        + json.dumps({"msisdn": NUMBER})
        + "\n",
        subaccount=MKT,
    )
    assert summary.recorded == 1  # the number as a JSON integer is read as international
    assert [(r.row, r.column) for r in rejected] == [
        (1, None),
        (3, "msisdn"),
        (4, "msisdn"),
        (5, "occurred_at"),
    ]
