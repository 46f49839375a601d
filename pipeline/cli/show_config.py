"""``--show-config``: an algorithm's resolved config, every key with its type, default and
docstring, printed before any work (after recipes, config files, overrides and options)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console

ShowConfig = Annotated[
    bool,
    typer.Option(
        help="Print the resolved config as YAML, each key with its docstring, type and "
        "default, and stop (nothing is run or written)."
    ),
]
"""The ``--show-config`` option of every algorithm's command."""


def print_configs(console: Console, configs: dict[str, BaseModel]) -> None:
    """Each config as commented YAML under a title line; several configs are separate YAML
    documents."""
    from pipeline.core.config_docs import commented_yaml

    for number, (title, config) in enumerate(configs.items()):
        if number:
            console.print("---", markup=False, highlight=False)
        console.print(f"# {title}", markup=False, highlight=False, soft_wrap=True)
        console.print(commented_yaml(config), markup=False, highlight=False, soft_wrap=True)
