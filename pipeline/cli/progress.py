"""What long commands show while they work: a rich bar on a terminal, plain lines in a log.

A rich bar redraws itself in place, which only makes sense when a person watches a
terminal; redirected to a file or a pipe it would print nothing for minutes. There the
same updates become plain lines: one when a stage starts, one when it ends, and one at
most every :data:`PLAIN_INTERVAL_S` seconds in between.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

PLAIN_INTERVAL_S = 5.0
"""Seconds between two plain progress lines of the same stage."""
LOG_WIDTH = 160
"""Columns for tables when the output is not a terminal (rich would assume 80)."""
_UNCHANGED: Any = object()


def make_console(stderr: bool = False) -> Console:
    """A console for a command's output that does not wrap long lines in a log file."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        # Paths, URIs and commands to copy must stay on one line; COLUMNS still wins.
        console.soft_wrap = True
        if "COLUMNS" not in os.environ:
            console.width = LOG_WIDTH
    return console


@dataclass
class _Stage:
    description: str
    total: int | None
    completed: int = 0
    note: str = ""
    started_at: float | None = None
    printed_at: float = 0.0
    done: bool = False
    rich_id: Any = field(default=None, repr=False)


class StageProgress:
    """Progress of one or more stages (record, epochs, episodes) of a command.

    Use as a context manager; :meth:`add` a stage with its total (None: unknown), then
    :meth:`update` it. Each stage shows ``completed/total``, a free-text note and the
    elapsed time.
    """

    def __init__(self, console: Console, interval_s: float = PLAIN_INTERVAL_S) -> None:
        self.console = console
        self.interval_s = interval_s
        self._stages: list[_Stage] = []
        self._bar: Progress | None = None
        if console.is_interactive:
            self._bar = Progress(
                TextColumn("[bold]{task.description}[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )

    def __enter__(self) -> StageProgress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
            return
        for stage in self._stages:
            if stage.started_at is not None and not stage.done:
                self._finish(stage, "stopped" if exc_type else "done")

    def add(self, description: str, total: int | None, start: bool = True) -> int:
        """A new stage; returns its handle. ``start=False`` waits for :meth:`start`."""
        stage = _Stage(description, total)
        if self._bar is not None:
            stage.rich_id = self._bar.add_task(description, total=total, note="", start=start)
        self._stages.append(stage)
        if start:
            self.start(len(self._stages) - 1)
        return len(self._stages) - 1

    def start(self, handle: int) -> None:
        """Start the clock of a stage added with ``start=False``."""
        stage = self._stages[handle]
        if stage.started_at is not None:
            return
        stage.started_at = stage.printed_at = time.monotonic()
        if self._bar is not None:
            self._bar.start_task(stage.rich_id)
        else:
            total = "" if stage.total is None else f" ({stage.total})"
            self._line(f"{stage.description}: started{total}")

    def update(
        self,
        handle: int,
        *,
        completed: int | None = None,
        advance: int = 0,
        total: int | None = _UNCHANGED,
        note: str | None = None,
    ) -> None:
        """Set or advance the count, change the total or the note of a stage."""
        stage = self._stages[handle]
        self.start(handle)
        stage.completed = (stage.completed if completed is None else completed) + advance
        if total is not _UNCHANGED:
            stage.total = total
        if note is not None:
            stage.note = note
        if self._bar is not None:
            self._bar.update(stage.rich_id, completed=stage.completed, total=stage.total,
                             note=stage.note)  # fmt: skip
            return
        if stage.done:
            return
        if stage.total is not None and stage.completed >= stage.total:
            self._finish(stage, "done")
        elif time.monotonic() - stage.printed_at >= self.interval_s:
            self._line(self._status(stage))
            stage.printed_at = time.monotonic()

    def finish(self, handle: int) -> None:
        """End a started stage before its total (early stopping); a no-op otherwise."""
        stage = self._stages[handle]
        if self._bar is None and stage.started_at is not None and not stage.done:
            self._finish(stage, "done")

    def elapsed(self, handle: int) -> float:
        """Seconds since the stage started (0 before)."""
        started = self._stages[handle].started_at
        return 0.0 if started is None else time.monotonic() - started

    def _finish(self, stage: _Stage, how: str) -> None:
        stage.done = True
        self._line(f"{self._status(stage)} {how}")

    def _status(self, stage: _Stage) -> str:
        total = "" if stage.total is None else f"/{stage.total}"
        seconds = 0.0 if stage.started_at is None else time.monotonic() - stage.started_at
        note = f" {stage.note}" if stage.note else ""
        return f"{stage.description}: {stage.completed}{total}{note} ({seconds:.0f} s)"

    def _line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
