"""How ``--help`` reads: Typer's rich help, adjusted so that it reads at 80 columns.

Typer 0.29 lays an options panel out as five table columns (long names, short names,
negative names, type, help) that rich shrinks alike when the terminal is narrow: at 80
columns (a normal terminal, or any pipe) it cut option names with '…'
(``--episode-secon…``). Here a panel has three: the option's names (a flag's ``--no-``
form on a second line) and its type, both never cut, and its help, which takes the rest
of the width and wraps. Where names and type would leave the help too little room, each
option's help goes under its names instead.

Also: help texts are plain text, never rich markup (which ate ``'.[ray]'``); a command's
summary in a command list is its docstring's first paragraph as one line of text, and
later paragraphs are rewrapped to the terminal instead of keeping the docstring's line
breaks; flags show no ``<bool>`` type.
"""

from __future__ import annotations

import inspect
from typing import Any

MIN_HELP_WIDTH = 28
"""Columns the help of an option keeps beside its names; with less it goes under them."""
_STACKED_INDENT = 4
"""Indent of an option's help under its names in the stacked layout."""


def install() -> None:
    """Apply the adjustments to Typer's rich help (once; a no-op on a Typer without it)."""
    try:
        from typer import rich_utils
    except ImportError:  # Typer without rich: click's plain help, which never cuts names
        return
    if getattr(rich_utils, "_pipeline_help_installed", False):
        return
    _flags_without_type()
    rich_utils._make_rich_text = _plain_text
    rich_utils._fix_linebreaks = _rewrapped_paragraphs
    rich_utils._make_command_help = _command_summary
    rich_utils._print_options_panel = _print_options_panel
    rich_utils._pipeline_help_installed = True


def summary(help_text: str | None) -> str:
    """A command's summary in a command list: its help's first paragraph on one line."""
    first = inspect.cleandoc(help_text or "").split("\n\n")[0]
    return " ".join(first.split())


def _flags_without_type() -> None:
    """Leave the ``<bool>`` out of the help of flags (``--help``, ``--overwrite``).

    Typer 0.29's rich help prints the value type of every option, flags included, while
    its plain help (like click's) prints none for options that take no value.
    """
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "flags_hidden", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag or self.count else shown(self, ctx)

    display_type_rich.flags_hidden = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


def _plain_text(*, text: str, style: str = "", markup_mode: Any = None) -> Any:
    """Help text as it is written: brackets are text, not rich markup."""
    from rich.text import Text
    from typer.rich_utils import highlighter

    return highlighter(Text(inspect.cleandoc(text), style=style, overflow="fold"))


def _rewrapped_paragraphs(paragraphs: list[str], markup_mode: Any = None) -> str:
    """Paragraphs joined by a blank line, each one's own line breaks removed (a paragraph
    that starts with ``\\b`` keeps them, as in click)."""
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)


def _command_summary(*, help_text: str, markup_mode: Any = None) -> Any:
    return _plain_text(text=summary(help_text))


def _names(param: Any) -> Any:
    """The option's names (long, then short; its ``--no-`` form on a second line), or an
    argument's name."""
    from rich.text import Text
    from typer.core import TyperArgument
    from typer.rich_utils import highlighter, negative_highlighter

    if isinstance(param, TyperArgument):
        name = param.display_name_raw
        if param.metavar is None and param.nargs != 1:
            name += "..."
        return highlighter(Text(name))
    ordered = sorted(param.opts, key=lambda opt: not opt.startswith("--"))
    text = highlighter(Text(", ".join(ordered)))
    if param.secondary_opts:
        text.append("\n")
        text.append_text(negative_highlighter(Text(", ".join(param.secondary_opts))))
    return text


def _value_type(param: Any, ctx: Any) -> Any:
    from rich.text import Text
    from typer.rich_utils import RANGE_STRING, STYLE_TYPES, types_highlighter

    text = Text(style=STYLE_TYPES)
    shown = param.display_type_rich(ctx=ctx)
    if shown is not None:
        text.append(shown)
    bounds = param._get_number_range_help_str()
    if bounds:
        text.append(RANGE_STRING.format(bounds))
    return types_highlighter(text)


def _print_options_panel(
    *, name: str, params: list[Any], ctx: Any, markup_mode: Any, console: Any
) -> None:
    """One panel of options or arguments (see the module docstring for the layout)."""
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text
    from typer import rich_utils

    if not params:
        return
    rows = []
    for param in params:
        marker = Text(rich_utils.REQUIRED_SHORT_STRING, style=rich_utils.STYLE_REQUIRED_SHORT)
        help_cell = rich_utils._get_parameter_help(param=param, ctx=ctx, markup_mode=markup_mode)
        rows.append((marker if param.required else Text(""), _names(param),
                     _value_type(param, ctx), help_cell))  # fmt: skip
    required = any(row[0].plain for row in rows)
    typed = any(row[2].plain for row in rows)
    inner = console.width - 4  # the panel's border and padding
    name_width = max(line_width for row in rows for line_width in _line_widths(row[1]))
    type_width = max(row[2].cell_len for row in rows)
    # Cells are padded by one column on each side but at the table's edges.
    beside = (3 if required else 0) + name_width + 2 + (type_width + 2 if typed else 0)
    table = Table(show_header=False, box=None, padding=(0, 1), pad_edge=False,
                  expand=True, highlight=True)  # fmt: skip
    if required:
        table.add_column(no_wrap=True)
    if inner - beside >= MIN_HELP_WIDTH:
        table.add_column(no_wrap=True, width=name_width)
        if typed:
            table.add_column(no_wrap=True, width=type_width)
        table.add_column(ratio=1)
        for marker, names, value_type, help_cell in rows:
            cells = [marker] if required else []
            cells += [names, value_type] if typed else [names]
            table.add_row(*cells, help_cell)
    else:  # stacked: names and type on a line, the help indented under them
        table.add_column(ratio=1, overflow="fold")
        for marker, names, value_type, help_cell in rows:
            head = names.copy()
            if value_type.plain:
                head.append("  ")
                head.append_text(value_type)
            cells = [marker] if required else []
            table.add_row(*cells, head)
            table.add_row(*([Text("")] if required else []),
                          Padding(help_cell, (0, 0, 0, _STACKED_INDENT)))  # fmt: skip
    console.print(Panel(table, border_style=rich_utils.STYLE_OPTIONS_PANEL_BORDER, title=name,
                        title_align=rich_utils.ALIGN_OPTIONS_PANEL))  # fmt: skip


def _line_widths(text: Any) -> list[int]:
    return [line.cell_len for line in text.split("\n")] or [0]
