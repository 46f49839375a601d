"""The progress line of a recording (``pipeline record``, the quickstart's first stage) says
what each of its numbers counts: ``record episodes: 4/100 kept, 6 dropped (the expert
fell)``, not ``4/100 dropped (expert fell) 6``."""

from __future__ import annotations

import io

from rich.console import Console

from pipeline.cli.progress import StageProgress
from pipeline.cli.record import progress_note
from pipeline.stages.record import RecordSummary


def test_a_recordings_progress_line_names_its_counts():
    summary = RecordSummary(path="walk.h5", committed=4, dropped_fell=6, target_episodes=100)
    text = io.StringIO()
    with StageProgress(Console(file=text, force_terminal=False), interval_s=0) as progress:
        bar = progress.add("record episodes", total=100)
        progress.update(bar, completed=4, note=progress_note(summary))
    assert text.getvalue().splitlines()[1] == (
        "record episodes: 4/100 kept, 6 dropped (the expert fell) (0 s)")  # fmt: skip


def test_kept_falls_and_rejected_attempts_are_named_too():
    summary = RecordSummary(path="walk.h5", committed=5, rejected=1)
    assert progress_note(summary, kept_falls=2) == (
        "kept (2 in which the expert fell), 1 rejected (non-finite values)")  # fmt: skip
    assert progress_note(RecordSummary(path="walk.h5")) == "kept, 0 dropped (the expert fell)"
