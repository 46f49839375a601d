"""``pipeline envs``: the registered environments, their spaces and shipped experts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipeline.cli.options import JsonOut, Overwrite
from pipeline.cli.progress import make_console
from pipeline.core.outputs import check_output_path, write_json


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
    console.print(envs_table(rows))
    if json_path is not None:
        write_json(json_path, {"command": "envs", "environments": rows})
        console.print(f"json: {json_path}")


def envs_table(rows: list[dict[str, Any]]) -> Table:
    """One row per environment; ids and expert names are never cut or wrapped, what the
    task is goes under its id (so that the table reads at 80 columns)."""
    table = Table(title="environments (obs, act: dimensions of observation and action)")
    table.add_column("env id / task", min_width=len(max((r["env_id"] for r in rows), key=len)))
    for column in ("obs", "act"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("episode")
    table.add_column("expert", no_wrap=True)
    for row in rows:
        what = Text(row["env_id"])
        what.append(f"\n{row['what']}", style="dim")
        table.add_row(what, str(row["observation_dim"]), str(row["action_dim"]),
                      row["episode"], str(row["expert"]))  # fmt: skip
    return table


def envs_command(
    json_out: JsonOut = None,
    overwrite: Overwrite = False,
) -> None:
    """List the environments and their shipped experts."""
    list_envs(make_console(), json_out, overwrite)
