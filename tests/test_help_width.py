"""What a user reads at 80 columns (a normal terminal, or any pipe): the ``--help`` of every
command and sub-command (found by walking the app's command tree, so a new command is
covered without a change here) and ``pipeline envs``. Nothing is cut short ('…'), no line
is wider than the terminal, every option name and every word of every help text is there
whole, and a command list shows each command's summary as one whole sentence."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
import typer
from rich.cells import cell_len
from typer import rich_utils

from pipeline.cli import main
from pipeline.cli.app import app
from pipeline.cli.help_format import summary

WIDTH = 80
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tree() -> list[tuple[list[str], Any]]:
    """(command path, click command) of the app and everything under it."""
    found = []

    def walk(command: Any, path: list[str]) -> None:
        found.append((path, command))
        if hasattr(command, "list_commands"):
            ctx = typer.main._click.Context(command)
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), [*path, name])

    walk(typer.main.get_command(app), [])
    return found


TREE = _tree()


@pytest.fixture
def at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every console 80 columns wide and without colour, whatever the environment says."""
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.delenv("TERMINAL_WIDTH", raising=False)
    monkeypatch.setattr(rich_utils, "MAX_WIDTH", WIDTH)
    monkeypatch.setattr(rich_utils, "FORCE_TERMINAL", None)
    monkeypatch.setattr(rich_utils, "COLOR_SYSTEM", None)


def _output(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return ANSI.sub("", out)


def _assert_fits(out: str) -> None:
    assert "…" not in out
    wide = [line for line in out.splitlines() if cell_len(line) > WIDTH]
    assert not wide, "\n".join(wide)


def _whole(name: str, out: str) -> bool:
    """Whether ``name`` stands in ``out`` as a whole word (``--seed``, not ``--seed-x``)."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", out) is not None


def _words(text: str | None) -> list[str]:
    return (text or "").replace("\b", " ").split()


@pytest.mark.parametrize("path", [path for path, _ in TREE],
                         ids=[" ".join(["pipeline", *path]) for path, _ in TREE])  # fmt: skip
def test_help_reads_at_80_columns(path, at_80_columns, capsys):
    command = dict((tuple(p), c) for p, c in TREE)[tuple(path)]
    out = _output(capsys, *path, "--help")
    _assert_fits(out)
    words = set(out.split())
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        names = [*param.opts, *param.secondary_opts]
        if param.param_type_name == "argument":
            names = [param.display_name_raw]
        for name in names:
            assert _whole(name, out), f"{name} is not shown whole"
        # Every word of its help is there as written: no word cut, none eaten as markup.
        missing = [w for w in _words(param.help) if w not in out]
        assert not missing, f"{names[0]}: {missing}"
    missing = [w for w in _words(command.help) if w not in words and w not in out]
    assert not missing, missing


def _listed(out: str, names: list[str]) -> dict[str, list[str]]:
    """The lines of text beside each command name in the help's command panel."""
    panel = out.split("─ Commands ", 1)[1]
    rows: dict[str, list[str]] = {}
    current = None
    for line in panel.splitlines()[1:]:
        if not line.startswith("│"):
            break
        inner = line.strip("│").strip()
        first = inner.split(" ", 1)[0]
        if first in names and first not in rows:
            current = first
            inner = inner.removeprefix(first)
        assert current is not None, line
        rows.setdefault(current, []).append(inner.strip())
    return rows


def _description_width(out: str) -> int:
    """Columns of the command panel's description column."""
    panel = out.split("─ Commands ", 1)[1].splitlines()[1]
    name = panel.strip("│").split()[0]
    start = panel.index(name) + len(name)
    start += len(panel[start:]) - len(panel[start:].lstrip())
    return WIDTH - 2 - start  # "... │" closes the line


@pytest.mark.parametrize("path", [path for path, c in TREE if hasattr(c, "list_commands")],
                         ids=lambda path: " ".join(["pipeline", *path]))  # fmt: skip
def test_command_lists_show_each_summary_as_one_whole_sentence(path, at_80_columns, capsys):
    group = dict((tuple(p), c) for p, c in TREE)[tuple(path)]
    out = _output(capsys, *path, "--help")
    commands = {name: group.get_command(None, name) for name in group.list_commands(None)}
    listed = _listed(out, list(commands))
    assert set(listed) == set(commands)
    width = _description_width(out)
    for name, command in commands.items():
        text = summary(command.help)
        assert text.endswith(".") and ". " not in text, f"{name}: not one sentence: {text}"
        lines = listed[name]
        assert " ".join(lines) == text, name
        # Wrapped where the column ends, never at a line break of the docstring.
        for line, after in itertools.pairwise(lines):
            assert cell_len(line) + 1 + cell_len(after.split()[0]) > width, (name, line)


def test_pipeline_envs_shows_whole_ids_and_experts_at_80_columns(at_80_columns, capsys):
    import sim

    out = _output(capsys, "envs")
    _assert_fits(out)
    for env_id in sim.ENV_IDS:
        assert _whole(env_id, out), env_id
        assert _whole(sim.EXPERT_FOR_ENV[env_id], out), env_id


def test_help_texts_are_plain_text_not_markup(at_80_columns, capsys):
    """``'.[ray]'`` was eaten as a rich markup tag; ``IMPULSE[@TIME]`` stays a metavar."""
    out = _output(capsys, "evaluate", "--help")
    assert "pip install '.[ray]'" in " ".join(out.replace("│", " ").split())
    assert "IMPULSE[@TIME]" in out
