"""Geometry of the console's server-drawn SVG: the consent timeline and the daily chart.

Only numbers and words come out of here; the templates turn them into SVG elements (so every
text is escaped by the template engine, and no style attribute is needed: states are classes).

Guarantees: the timeline has one row per subaccount, in the order given; each consent interval
is one bar spanning its valid time (an open interval runs to the right edge), classed by its
state and scope; every tenant-wide opt-out or opt-in of the number is a marker across all rows;
the valid time asked about is a line across all rows. The chart has one pair of bars per day of
the period, scaled to the busiest day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ledger.timefmt import parse_time
from projections.lookup import SubaccountRow
from projections.read_model import ConsentDay

WIDTH = 960
LABEL_WIDTH = 170
RIGHT = 16
ROW_HEIGHT = 26
ROW_GAP = 12
TOP = 34
AXIS = 30


@dataclass(frozen=True)
class Bar:
    """One interval of one row: a rectangle and what it says."""

    x: float
    y: float
    width: float
    height: float
    state: str
    scope: str
    position: int
    label: str


@dataclass(frozen=True)
class Row:
    """One subaccount: its label and its bars."""

    y: float
    label: str
    known: bool
    bars: list[Bar]


@dataclass(frozen=True)
class Marker:
    """A tenant-wide entry, drawn across every row at its occurred time."""

    x: float
    position: int
    label: str


@dataclass(frozen=True)
class Tick:
    """An axis label."""

    x: float
    label: str
    anchor: str = "middle"


@dataclass(frozen=True)
class Timeline:
    """Everything the timeline template draws."""

    width: int
    height: int
    plot_left: int
    plot_right: int
    rows: list[Row]
    markers: list[Marker]
    ticks: list[Tick]
    at_x: float
    at_label: str
    axis_y: float
    empty: bool = field(default=False)


@dataclass(frozen=True)
class TenantWide:
    """A tenant-wide consent entry of the number (for markers)."""

    position: int
    occurred_at: str
    label: str


def _span(
    rows: list[SubaccountRow], tenant_wide: list[TenantWide], at: str
) -> tuple[datetime, datetime]:
    times = [parse_time(at)]
    for row in rows:
        for interval in row.intervals:
            times.append(parse_time(interval.from_))
            if interval.to:
                times.append(parse_time(interval.to))
    times += [parse_time(t.occurred_at) for t in tenant_wide]
    start, end = min(times), max(times)
    if end - start < timedelta(days=1):
        start -= timedelta(hours=12)
        end += timedelta(hours=12)
    pad = (end - start) * 0.04
    return start - pad, end + pad


def timeline(rows: list[SubaccountRow], tenant_wide: list[TenantWide], at: str) -> Timeline:
    """The timeline of ``rows`` (one per subaccount), with ``tenant_wide`` markers and the
    valid time ``at``."""
    start, end = _span(rows, tenant_wide, at)
    left, right = LABEL_WIDTH, WIDTH - RIGHT
    total = (end - start).total_seconds()

    def x_of(moment: datetime) -> float:
        return round(left + (moment - start).total_seconds() / total * (right - left), 1)

    drawn = []
    for i, row in enumerate(rows):
        y = TOP + i * (ROW_HEIGHT + ROW_GAP)
        bars = []
        for interval in row.intervals:
            x0 = x_of(parse_time(interval.from_))
            x1 = x_of(parse_time(interval.to)) if interval.to else right
            state = interval.state.replace("_", " ")
            until = f" until {interval.to}" if interval.to else " (still in force)"
            wide = " by a tenant-wide entry" if interval.scope == "tenant" else ""
            label = (
                f"{row.subaccount}: {state}{wide} from {interval.from_}{until}, "
                f"decided by entry {interval.position}"
            )
            bars.append(
                Bar(x0, y, max(x1 - x0, 2.0), ROW_HEIGHT, interval.state, interval.scope,
                    interval.position, label)
            )  # fmt: skip
        drawn.append(Row(y, row.subaccount, row.known, bars))
    bottom = TOP + max(len(rows), 1) * (ROW_HEIGHT + ROW_GAP)
    markers = [Marker(x_of(parse_time(t.occurred_at)), t.position, t.label) for t in tenant_wide]
    ticks = [
        Tick(round(left + k * (right - left) / 4, 1), _day(start + (end - start) * k / 4),
             "start" if k == 0 else "end" if k == 4 else "middle")
        for k in range(5)
    ]  # fmt: skip
    return Timeline(
        width=WIDTH,
        height=int(bottom + AXIS),
        plot_left=left,
        plot_right=right,
        rows=drawn,
        markers=markers,
        ticks=ticks,
        at_x=x_of(parse_time(at)),
        at_label=at,
        axis_y=bottom + 4,
        empty=not any(r.intervals for r in rows),
    )


@dataclass(frozen=True)
class DayBars:
    """One day of the chart: two bars (opt-outs, opt-ins)."""

    day: str
    x: float
    out_y: float
    out_height: float
    in_y: float
    in_height: float
    opted_out: int
    opted_in: int


@dataclass(frozen=True)
class Chart:
    """The daily chart: bars, the busiest day's count, and its size."""

    width: int
    height: int
    bar_width: float
    days: list[DayBars]
    peak: int
    base_y: float
    ticks: list[Tick]


def daily_chart(counts: list[ConsentDay], first_day: datetime, days: int = 30) -> Chart:
    """Bars for each of ``days`` days from ``first_day`` (days without entries are zero)."""
    by_day = {c.day: c for c in counts}
    width, height, left, base = 640, 180, 40, 150.0
    slot = (width - left - 10) / days
    bar = max(slot / 2 - 1, 1.0)
    peak = max([max(c.opted_out, c.opted_in) for c in counts] or [0])
    scale = (base - 10) / peak if peak else 0.0
    out = []
    ticks = []
    for k in range(days):
        day = (first_day + timedelta(days=k)).date().isoformat()
        found = by_day.get(day, ConsentDay(day, 0, 0))
        x = left + k * slot
        h_out, h_in = found.opted_out * scale, found.opted_in * scale
        out.append(
            DayBars(day, round(x, 1), round(base - h_out, 1), round(h_out, 1),
                    round(base - h_in, 1), round(h_in, 1), found.opted_out, found.opted_in)
        )  # fmt: skip
        if k % 7 == 0:
            ticks.append(Tick(round(x, 1), day[5:]))
    return Chart(width, height, round(bar, 1), out, peak, base, ticks)


def _day(moment: datetime) -> str:
    return moment.date().isoformat()
