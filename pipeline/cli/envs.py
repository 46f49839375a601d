"""``pipeline envs``: the registered environments, their spaces and shipped experts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli.options import Overwrite
from pipeline.cli.progress import make_console
from pipeline.core.outputs import check_output_path, write_json

if TYPE_CHECKING:
    pass


def list_envs(console: Console, json_path: Path | None, overwrite: bool = False) -> None:
    """Print the registered environments with their spaces and experts."""
    import gymnasium as gym

    import sim

    if json_path is not None:
        check_output_path(json_path, "--json", (".json",), overwrite=overwrite)
    rows = []
    for env_id in sim.ENV_IDS:
        env = gym.make(env_id)
        try:
            skill = sim.SKILL_FOR_ENV.get(env_id)
            rows.append({
                "env_id": env_id,
                "observation_dim": int(env.observation_space.shape[0]),
                "action_dim": int(env.action_space.shape[0]),
                "expert": sim.EXPERT_FOR_ENV.get(env_id),
                "episode": (f"{env.unwrapped.episode_seconds:g} s" if skill is not None
                            else f"{env.unwrapped.max_steps} steps"),
                "what": skill.summary if skill is not None else "a fast crouched run",
            })  # fmt: skip
        finally:
            env.close()
    table = Table(title="environments")
    for column in ("env id", "observation", "action", "episode", "expert", "what"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["env_id"], str(row["observation_dim"]), str(row["action_dim"]),
                      row["episode"], str(row["expert"]), row["what"])  # fmt: skip
    console.print(table)
    if json_path is not None:
        write_json(json_path, {"command": "envs", "environments": rows})
        console.print(f"json: {json_path}")


def envs_command(
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the list as JSON.")] = None,
    overwrite: Overwrite = False,
) -> None:
    """List the environments and their shipped experts."""
    list_envs(make_console(), json_out, overwrite)
