"""The one place a training config is resolved, for every caller: ``pipeline train`` and
``pipeline dagger``, the quickstart, tune's trials and the benchmarks.

The base is, in order: the run's own ``config.yaml`` when resuming without ``--config``; a
``--config`` file; else the measured recipe for the environment the data was recorded in
(:mod:`pipeline.training.recipes`). Overrides come next, then the command-line options
(:class:`TrainOptions`), which win. An override of ``model.name`` leaves out the recipe's
``model.*`` settings, which belong to its own architecture.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.training.config import TrainConfig, load_config
from pipeline.training.recipes import recipe_for


@dataclass(frozen=True)
class TrainOptions:
    """The training options a command takes beside overrides (None or False: not given)."""

    seed: int | None = None
    """``seed``."""
    no_track: bool = False
    """``tracking.enabled=false``."""
    tracking_uri: str | None = None
    """``tracking.tracking_uri``."""
    register: str | None = None
    """``tracking.registered_model``."""
    deterministic: bool = False
    """``training.deterministic=true``."""
    mixed_precision: bool = False
    """``training.mixed_precision=true``."""
    init_from: str | None = None
    """``init.from_policy``: a policy or run directory, or a runs:/ or models:/ URI."""
    freeze: int | None = None
    """``init.freeze`` (needs ``init_from``)."""
    keep_normalization: bool = False
    """``init.keep_normalization=true`` (needs ``init_from``)."""

    def overrides(self) -> list[str]:
        """The options as config overrides; one line for an option that lacks its source."""
        extra = []
        for flag, key, value in (
            (self.seed is not None, "seed", self.seed),
            (self.no_track, "tracking.enabled", "false"),
            (self.tracking_uri is not None, "tracking.tracking_uri", self.tracking_uri),
            (self.register is not None, "tracking.registered_model", self.register),
            (self.deterministic, "training.deterministic", "true"),
            (self.mixed_precision, "training.mixed_precision", "true"),
        ):
            if flag:
                extra.append(f"{key}={value}")
        return extra + self._init_overrides()

    def _init_overrides(self) -> list[str]:
        if self.init_from is None:
            for option, given in (("--freeze", self.freeze is not None),
                                  ("--keep-normalization", self.keep_normalization)):  # fmt: skip
                if given:
                    raise PipelineError(f"{option} needs --init-from (the policy to start from)")
            return []
        from pipeline.rollout.policy_source import is_mlflow_uri

        if not is_mlflow_uri(self.init_from) and not Path(self.init_from).exists():
            raise PipelineError(f"--init-from {self.init_from}: policy directory not found")
        # JSON quoting keeps a path like "2026" a string when the override is parsed.
        extra = [f"init.from_policy={json.dumps(self.init_from)}"]
        if self.freeze is not None:
            extra.append(f"init.freeze={self.freeze}")
        if self.keep_normalization:
            extra.append("init.keep_normalization=true")
        return extra


def resolve_train_config(
    config_path: Path | None = None,
    overrides: Sequence[str] = (),
    *,
    env_id: str | None = None,
    options: TrainOptions | None = None,
    resume_out: Path | None = None,
) -> TrainConfig:
    """The training config: base, then ``overrides``, then ``options`` (see the module
    docstring). ``env_id`` names the recipe when there is no config file (None or an env
    without a recipe: the typed defaults). ``resume_out`` is the run directory of
    ``--resume``: without ``config_path`` its ``config.yaml`` is the base, and the resumed
    run's own check refuses any setting that then differs from it."""
    from pipeline.training.resume import saved_config_path

    base: list[str] = []
    if resume_out is not None and config_path is None:
        config_path = saved_config_path(resume_out)
    elif config_path is None and env_id is not None:
        base = recipe_for(env_id)
    given = [*overrides, *(options or TrainOptions()).overrides()]
    if any(option.partition("=")[0].strip() == "model.name" for option in given):
        base = [entry for entry in base if not entry.startswith("model.")]
    return load_config(config_path, [*base, *given])


def recorded_env(data: Path) -> str | None:
    """The env id a demonstration file was recorded in; None when the file cannot be read
    (the dataset check reports why, with the file's name)."""
    from datasets import DatasetError, open_dataset

    try:
        with open_dataset(data) as ds:
            return ds.metadata.env_id
    except (DatasetError, OSError):
        return None
