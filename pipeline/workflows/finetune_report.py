"""The parts of ``pipeline report DIR`` that are particular to a fine-tuning run
(``pipeline finetune``): what the run was, its closed-loop selections beside the expert, its
curve and per-update training metrics, and the command that reproduces it.

Apart from :mod:`pipeline.workflows.report` so that the page's general module stays short;
it reads only what ``pipeline finetune`` writes (the file names are that module's).
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.algorithms.finetune import CURVE_FILE, FINETUNE_FILE, REQUEST_FILE
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import read_json_object
from pipeline.core.run_files import POLICY_DIR
from pipeline.reports.html_page import Section, cell, paragraph, percent, picture, table

MAX_UPDATE_ROWS = 24
"""Per-update rows the page shows one by one; a longer run's updates are shown as this many
spans of consecutive updates (means), so that a 3M-step run's table stays readable."""


@dataclass(frozen=True)
class FinetuneRun:
    """What a fine-tuning run folder holds that the page shows."""

    run: Path
    record: dict[str, Any]
    """Its ``finetune.json``."""
    request: dict[str, Any] = field(default_factory=dict)
    """Its ``finetune_request.json`` (the arguments; {} when missing)."""

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.record["rows"]

    @property
    def selections(self) -> list[dict[str, Any]]:
        return self.record["selections"]

    @property
    def config(self) -> dict[str, Any]:
        return self.record["config"]

    def published(self) -> dict[str, Any] | None:
        """The selection whose policy is ``DIR/policy``: the last one marked published (each
        replaced the one before it)."""
        marked = [s for s in self.selections if s.get("published")]
        return marked[-1] if marked else None

    def anchor_data(self) -> Path | None:
        data = self.request.get("anchor_data")
        return Path(data) if data else None


def read_finetune_run(run: Path) -> FinetuneRun:
    """The run in ``run``; one line naming RUN when its ``finetune.json`` is not one."""
    path = run / FINETUNE_FILE
    record = read_json_object(path, "RUN")
    shapes = {"rows": list, "selections": list, "config": dict}
    wrong = [key for key, kind in shapes.items() if not isinstance(record.get(key), kind)]
    if record.get("command") != "finetune" or wrong:
        what = f" (no valid {', '.join(wrong)})" if wrong else ""
        raise PipelineError(f"RUN {path}: not a run of pipeline finetune{what}")
    request = run / REQUEST_FILE
    return FinetuneRun(run, record, read_json_object(request, "RUN") if request.is_file() else {})


def _name(selection: dict[str, Any]) -> str:
    update = selection.get("update", -1)
    return "starting policy" if update < 0 else f"after update {update}"


def _seeds(config: dict[str, Any]) -> str:
    selection = config.get("selection") or {}
    episodes, seed = selection.get("episodes"), selection.get("seed")
    if not isinstance(episodes, int) or not isinstance(seed, int):
        return f"{episodes} selection episodes"
    return f"{episodes} selection episodes (seeds {seed}-{seed + episodes - 1})"


# -- the opening sentence and the run --------------------------------------------------------


def holdings(ft: FinetuneRun, evaluated: str) -> str:
    """The page's opening sentence for a fine-tuning run; ``evaluated``: what its
    ``evaluation/`` folder holds, "" without one."""
    checkpoints = sum(1 for s in ft.selections if s.get("update", -1) >= 0)
    published = ft.published()
    text = (f"This fine-tuning run holds the closed-loop selections of its starting policy "
            f"and of {checkpoints} fine-tuned checkpoints on the same {_seeds(ft.config)}, "
            f"beside the expert's, the training metrics of its {len(ft.rows)} updates "
            f"({ft.record.get('env_steps')} environment steps)")  # fmt: skip
    if published is not None:
        text += f", and the policy it published ({_name(published)})"
    if evaluated:
        return f"{text}; its evaluation/ folder holds {evaluated}."
    return f"{text}; it holds no evaluation on held-out seeds."


def _wall(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _run_section(ft: FinetuneRun) -> Section:
    record, config = ft.record, ft.config
    warmup = sum(1 for r in ft.rows if r.get("phase") == "warmup")
    anchor = config.get("anchor") or {}
    published = ft.published()
    resumed = record.get("resumed_from_update") or 0
    wall = _wall(record.get("wall_s"))
    rows = [
        ["starting policy", str(ft.request.get("policy", "-"))],
        ["environment", str(record.get("env_id"))],
        ["environment steps", f"{record.get('env_steps')} (asked: {config.get('steps')})"],
        ["updates", f"{record.get('updates')} ({warmup} critic warm-up, "
                    f"{len(ft.rows) - warmup} PPO)"],
        ["steps per update", str(config.get("steps_per_update"))],
        ["anchor", f"{anchor.get('source')}, weight {anchor.get('weight')} "
                   f"x {anchor.get('decay')} per update"],
        ["published policy", f"{ft.run / POLICY_DIR} "
                             f"({_name(published) if published else 'none'})"],
        ["wall time", wall if not resumed else f"{wall} (the session resumed at update "
                                               f"{resumed})"],
        ["MLflow run", str(record.get("run_id") or "not tracked")],
    ]  # fmt: skip
    if ft.anchor_data() is not None:
        rows.insert(6, ["anchor demonstrations", str(ft.anchor_data())])
    return Section("Fine-tuning run", table(["", "value"], rows))


# -- selections --------------------------------------------------------------------------------


def selection_rows(ft: FinetuneRun) -> list[list[str]]:
    """The expert's score (the reference), then the starting policy and every selection;
    ``published`` marks the one that is ``DIR/policy``."""
    expert = ft.record.get("expert") or {}
    published = ft.published()
    rows = [
        [
            "expert (reference)",
            "-",
            percent(expert.get("survival")),
            cell(expert.get("normalized_distance")),
            cell(expert.get("normalized_pose_reward")),
            cell(expert.get("distance")),
            "",
        ]
    ]
    for s in ft.selections:
        rows.append([_name(s), cell(s.get("env_steps")), percent(s.get("survival")),
                     cell(s.get("normalized_distance")), cell(s.get("normalized_pose_reward")),
                     cell(s.get("distance")), "yes" if s is published else ""])  # fmt: skip
    return rows


def _selections_section(ft: FinetuneRun, evaluated: bool) -> Section:
    columns = ("policy", "env steps", "survival", "norm. distance", "norm. pose reward",
               "distance m", "published")  # fmt: skip
    caption = (f"the deterministic policy on {_seeds(ft.config)}; normalized: 0 = random, "
               "1 = expert")  # fmt: skip
    body = table(columns, selection_rows(ft), caption)
    body += paragraph(
        "Published: the best by survival, then normalized distance (pose reward for a skill "
        "that stays in place), the starting policy included, saved as policy/ in the run."
    )
    if not evaluated:
        body += paragraph(
            "These are the episodes the published policy was chosen on, so its score here is "
            "optimistic. For held-out numbers, videos and survival by start phase: pipeline "
            f"evaluate --policy {ft.run / POLICY_DIR} --compare-expert --out "
            f"{ft.run / 'evaluation'}, then report again.",
            note=True,
        )
    return Section("Selections against the expert", body)


# -- the curve and the updates ------------------------------------------------------------------


UPDATE_COLUMNS = ("update", "env steps", "phase", "episodes", "train survival", "return",
                  "value loss", "KL", "clipped", "log-std", "anchor weight", "steps/s")  # fmt: skip
"""The per-update table's columns: the training episodes' survival and return, then how the
critic and the PPO step went."""


def _spans(count: int, limit: int) -> Iterator[range]:
    """``count`` updates as at most ``limit`` spans of consecutive updates, near equal."""
    spans = min(count, limit)
    for k in range(spans):
        yield range(k * count // spans, (k + 1) * count // spans)


def _mean(rows: Sequence[dict[str, Any]], key: str, weight: str | None = None) -> float:
    """The mean of ``key`` over ``rows`` where it is a number (warm-up updates have no KL),
    weighted by ``weight`` when given (survival: by the episodes that ended)."""
    pairs = [(r[key], r[weight] if weight else 1) for r in rows
             if isinstance(r.get(key), int | float) and math.isfinite(r[key])]  # fmt: skip
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else math.nan


def update_rows(rows: Sequence[dict[str, Any]], limit: int = MAX_UPDATE_ROWS) -> list[list[str]]:
    """One table row per update, or, past ``limit`` updates, per span of updates: the
    means of the span (survival weighted by episodes, episodes summed, the span's last env
    steps)."""
    table_rows = []
    for span in _spans(len(rows), limit):
        part = [rows[i] for i in span]
        first, last = part[0], part[-1]
        label = str(last.get("update")) if len(part) == 1 else \
            f"{first.get('update')}-{last.get('update')}"  # fmt: skip
        phases = dict.fromkeys(str(r.get("phase")) for r in part)
        episodes = sum(r.get("episodes") or 0 for r in part)
        table_rows.append([
            label, cell(last.get("env_steps")), "+".join(phases), str(episodes),
            percent(_mean(part, "survival", "episodes")), cell(_mean(part, "mean_return")),
            cell(_mean(part, "value_loss")), cell(_mean(part, "approx_kl")),
            percent(_mean(part, "clip_fraction")), cell(_mean(part, "log_std")),
            cell(_mean(part, "anchor_weight")), cell(_mean(part, "steps_per_s")),
        ])  # fmt: skip
    return table_rows


def curves(ft: FinetuneRun) -> str:
    """The page's learning curves of a fine-tuning run: its curve and the per-update table."""
    body = ""
    curve = ft.run / CURVE_FILE
    if curve.is_file():
        body += picture(
            curve,
            "selection survival and normalized pose reward against "
            "environment steps; the starting policy and the expert as lines",
        )
    count = len(ft.rows)
    caption = (f"every update: training episodes (cut at "
               f"{(ft.config.get('curriculum') or {}).get('episode_seconds')} s) and the "
               "update's losses")  # fmt: skip
    if count > MAX_UPDATE_ROWS:
        caption = (f"{count} updates as {MAX_UPDATE_ROWS} spans of consecutive updates (means; "
                   f"{FINETUNE_FILE} holds every update)")  # fmt: skip
    return body + table(UPDATE_COLUMNS, update_rows(ft.rows), caption)


def sections(ft: FinetuneRun, evaluated: bool) -> list[Section]:
    """The run and its selections, the page's first sections (its curves are with the
    page's learning curves); ``evaluated``: whether the run's ``evaluation/`` folder holds
    held-out results (the page shows them apart)."""
    return [_run_section(ft), _selections_section(ft, evaluated)]


# -- the command that reproduces it -------------------------------------------------------------


def _yaml_value(value: Any) -> str:
    """``value`` as an override's YAML reads it back: a float keeps its point (YAML reads
    ``2e-05`` as a string), a string that YAML would read as something else is quoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    if isinstance(value, list | tuple):
        return "[" + ",".join(_yaml_value(v) for v in value) + "]"
    text = str(value)
    return text if yaml.safe_load(text) == text else json.dumps(text)


def overrides(ft: FinetuneRun) -> list[str]:
    """``key=value`` for every config key that differs from what ``pipeline finetune``
    starts from for this env (the typed defaults and the env's recipe)."""
    from pipeline.algorithms.finetune_config import FinetuneConfig, resolve_finetune_config
    from pipeline.training.config import config_differences

    env = ft.request.get("env_id") or ft.record.get("env_id")
    base = resolve_finetune_config(None, [], env_id=env)
    run = FinetuneConfig.model_validate(ft.config)
    return [f"{key}={_yaml_value(value)}" for key, _, value in config_differences(base, run)]


def command(ft: FinetuneRun) -> str:
    """``pipeline finetune`` with the run's arguments and config, into ``DIR-again``."""
    words = ["pipeline", "finetune", "--policy", str(ft.request.get("policy", "POLICY")),
             "--out", f"{ft.run}-again"]  # fmt: skip
    if ft.request.get("env_id"):
        words += ["--env", str(ft.request["env_id"])]
    if ft.anchor_data() is not None:
        words += ["--anchor-data", str(ft.anchor_data())]
    return shlex.join([*words, *overrides(ft)])
