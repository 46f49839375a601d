"""``pipeline motion fit``: learn one cycle of a skill's clip as phase -> joint angles.

The course's imitation lab: a small Keras network maps the time within the cycle (here the
phase, time / cycle time) to the joint angles of the pose at that time, trained full batch
on squared error with Adam. Here the joint angles are our character's (a unit quaternion
per spherical joint, an angle per revolute one: the clip's own layout), the training
samples are the clip's key frames, and the fit is measured as rotation-angle error per
joint on phases between the key frames too. MLflow gets the config, the loss curve, the
per-joint errors, the plots and the model.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_dir
from pipeline.stages.motion.clip_data import MotionSamples, interpolated, key_frames, rmse_table
from pipeline.stages.motion.config import MotionFitConfig
from pipeline.stages.motion.files import MODEL_DIR, MotionSpec, clip_path, save_motion
from pipeline.training.config import config_to_dict

PLOTS_DIR = "plots"
RESULT_FILE = "fit.json"


@dataclass
class MotionFitResult:
    """What a motion fit produced and measured."""

    out_dir: str
    model_dir: str
    skill: str
    samples: int
    """Training poses (the clip's key frames unless ``config.samples`` is set)."""
    steps: int
    fit_s: float
    """Wall seconds of the gradient steps (model building and saving excluded)."""
    final_loss: float
    """Squared error on the training poses after the last step."""
    rmse: dict[str, float]
    """Root-mean-square joint error (radians) on the evaluation phases: per joint, per
    group (torso, legs, arms) and ``all``."""
    rmse_at_samples: float
    """The same over all joints on the training poses themselves."""
    loss_steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_fit_out(out: Path) -> None:
    """A new run directory, never an existing one (checked before anything runs)."""
    check_output_dir(out, "--out")
    if out.exists() and any(out.iterdir()):
        raise PipelineError(f"--out {out}: already exists; choose another --out")


def training_samples(config: MotionFitConfig, clip: Any) -> MotionSamples:
    return key_frames(clip) if config.samples is None else interpolated(clip, config.samples)


def _train(model: Any, samples: MotionSamples, config: MotionFitConfig) -> tuple[list, list]:
    """Full-batch Adam on squared error; the loss every ``log_every`` steps."""
    import keras
    import tensorflow as tf

    chunk = min(config.log_every, config.steps)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse",
                  steps_per_execution=chunk)  # fmt: skip
    x = samples.phases.astype(np.float32).reshape(-1, 1)
    y = samples.targets.astype(np.float32)
    # Every element is the whole data set: one element, one full-batch step, as in the lab;
    # an "epoch" of ``chunk`` steps only sets how often the loss is reported.
    batches = tf.data.Dataset.from_tensors((x, y)).repeat()
    history = model.fit(batches, epochs=math.ceil(config.steps / chunk),
                        steps_per_epoch=chunk, shuffle=False, verbose=0)  # fmt: skip
    losses = [float(v) for v in history.history["loss"]]
    return [chunk * (i + 1) for i in range(len(losses))], losses


def fit_motion(
    config: MotionFitConfig, out: Path, tracking_uri: str | None = None
) -> MotionFitResult:
    """Fit the skill's clip into ``out`` (new); ``tracking_uri`` None: no MLflow."""
    import sim
    from models import build_motion_net
    from pipeline.reports.motion_plots import plot_joint_trajectories, plot_motion_loss
    from pipeline.tracking import flatten_params, open_tracker
    from sim.mocap import JOINT_VECTOR_NAMES, MotionClip

    check_fit_out(out)
    skill = sim.SKILLS[config.skill]
    clip_file = str(Path(config.clip).resolve()) if config.clip else skill.clip
    clip = MotionClip.load(clip_path(clip_file))
    samples = training_samples(config, clip)
    grid = interpolated(clip, config.eval_points)
    model = build_motion_net(config.net, len(JOINT_VECTOR_NAMES), seed=config.seed)
    tags = {"command": "motion fit", "skill": config.skill}
    with open_tracker(tracking_uri, config.tracking.experiment,
                      run_name=f"motion fit {config.skill} seed{config.seed}",
                      tags=tags) as tracker:  # fmt: skip
        tracker.log_params(flatten_params(config_to_dict(config)))
        start = time.perf_counter()
        loss_steps, losses = _train(model, samples, config)
        fit_s = time.perf_counter() - start
        predict = model.predict_on_batch
        learned = np.asarray(predict(grid.phases.reshape(-1, 1).astype(np.float32)))
        at_samples = np.asarray(predict(samples.phases.reshape(-1, 1).astype(np.float32)))
        final_loss = float(np.mean((at_samples - samples.targets) ** 2))
        rmse = rmse_table(learned, grid.targets)
        out.mkdir(parents=True, exist_ok=True)
        config_yaml = yaml.safe_dump(config_to_dict(config), sort_keys=False)
        (out / "config.yaml").write_text(config_yaml)
        spec = MotionSpec(skill=config.skill, env_id=skill.env_id, clip=clip_file,
                          cycle_time=clip.cycle_time, outputs=JOINT_VECTOR_NAMES)  # fmt: skip
        save_motion(out / MODEL_DIR, model, spec, config_yaml)
        plots = out / PLOTS_DIR
        plots.mkdir()
        keys, title = key_frames(clip), f"{Path(clip_file).stem} clip"
        plot_joint_trajectories(grid.phases, grid.targets, learned, keys.phases, keys.targets,
                                plots / "trajectories.png", title)  # fmt: skip
        plot_motion_loss(loss_steps, losses, plots / "loss.png")
        result = MotionFitResult(
            out_dir=str(out), model_dir=str(out / MODEL_DIR), skill=config.skill,
            samples=len(samples.phases), steps=loss_steps[-1], fit_s=fit_s,
            final_loss=final_loss, rmse=rmse,
            rmse_at_samples=rmse_table(at_samples, samples.targets)["all"],
            loss_steps=loss_steps, loss=losses,
            plots=[str(plots / "trajectories.png"), str(plots / "loss.png")],
            run_id=tracker.run_id,
        )  # fmt: skip
        for step, value in zip(loss_steps, losses, strict=True):
            tracker.log_metrics({"train/loss": value}, step=step)
        tracker.log_metrics({"fit_s": fit_s, "final_loss": final_loss,
                             **{f"rmse/{k}": v for k, v in rmse.items()}},
                            step=loss_steps[-1])  # fmt: skip
        for path in (plots / "trajectories.png", plots / "loss.png"):
            tracker.log_artifact(path, PLOTS_DIR)
        tracker.log_artifact(out / MODEL_DIR)  # as model/
        (out / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result
