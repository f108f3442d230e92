"""Progress bars for long commands (import, export, rebuild, verify, retention, copy-store, the
benchmark's log build): one library (rich), one look.

Guarantees: a bar (count, rate, time left) is drawn on stderr only when stderr is a terminal and
``--quiet`` was not given; on a pipe, a file or with ``--quiet`` nothing at all is written, so a
command's result on stdout is never mixed with progress. A bar never raises into the command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

Unit = Literal["bytes", "entries", "numbers", "rows"]


class Bar(Protocol):
    """What a command tells its bar: how far it has come (absolute) or how much more."""

    def update(self, completed: int, total: int | None = None) -> None:
        """Set the count done so far (and the total, when it becomes known)."""
        ...

    def advance(self, amount: int = 1) -> None:
        """Add ``amount`` to the count done."""
        ...


class _Silent:
    """The bar of a pipe or ``--quiet``: draws nothing."""

    def update(self, completed: int, total: int | None = None) -> None:
        """Nothing to draw."""

    def advance(self, amount: int = 1) -> None:
        """Nothing to draw."""


class _RichBar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress, self._task = progress, task

    def update(self, completed: int, total: int | None = None) -> None:
        if total is not None:
            self._progress.update(self._task, completed=completed, total=total)
        else:
            self._progress.update(self._task, completed=completed)

    def advance(self, amount: int = 1) -> None:
        self._progress.advance(self._task, amount)


class _Rate(ProgressColumn):
    """Items per second (rich's own speed column counts bytes)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = "/s" if self.unit == "/" else f" {self.unit}/s"
        return Text(f"{speed:,.0f}{unit}" if speed else f"?{unit}")


def quiet_option(p: argparse.ArgumentParser) -> None:
    """Add ``--quiet``: no progress bar even on a terminal."""
    p.add_argument(
        "--quiet", action="store_true", help="no progress bar (none is drawn on a pipe anyway)"
    )


def shown(quiet: bool = False) -> bool:
    """Whether a bar would be drawn: stderr is a terminal and not ``quiet``."""
    return not quiet and sys.stderr.isatty()


@contextmanager
def progress_bar(
    description: str, total: int | None, unit: Unit = "entries", *, quiet: bool = False
) -> Iterator[Bar]:
    """A bar for one long job (see the module guarantees); ``total`` ``None``: unknown."""
    if not shown(quiet):
        yield _Silent()
        return
    columns: list[str | ProgressColumn] = [TextColumn("{task.description}"), BarColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn(), _Rate(unit)]
    columns += [TaskProgressColumn(), TimeRemainingColumn()]
    console = Console(stderr=True)
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield _RichBar(progress, task)


@contextmanager
def phased_bar(command: str, *, quiet: bool = False) -> Iterator[Callable[[str, int, int], None]]:
    """A bar per phase of a job that reports ``(phase, done, total)`` (``verify``); nothing
    off a terminal or with ``quiet``."""
    if not shown(quiet):
        yield lambda phase, done, total: None
        return
    columns: list[str | ProgressColumn] = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate("/"),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True)) as progress:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(f"{command} {phase}", total=total)
            progress.update(tasks[phase], completed=done, total=total)

        yield report
