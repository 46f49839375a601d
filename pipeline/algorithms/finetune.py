"""``pipeline finetune``: reward fine-tuning of a learned policy with PPO and a
demonstration anchor, until it survives what its teacher does not.

One run, in ``DIR``:

1. the starting policy (any state policy the pipeline trained: behaviour cloning, DAgger,
   a ``runs:/`` or ``models:/`` URI) becomes the mean of a Gaussian (:mod:`.ppo`);
2. every update gathers ``steps_per_update`` environment steps as fixed rollout segments
   on the worker pool (local processes or Ray actors; :mod:`pipeline.rollout.segments`),
   the first ``critic.warmup_updates`` fit the critic alone, the others run PPO with the
   anchor's weight decaying;
3. every ``selection.every`` policy updates (and after the last) the deterministic policy
   is rolled out on the selection seeds next to the expert and a random policy; the best
   by survival, then normalized distance (pose reward for a skill that stays in place),
   is published as ``DIR/policy``, which ``evaluate``, ``compare``, ``policy export`` and
   ``report`` accept;
4. after every update ``DIR/checkpoint.npz`` holds all the state (both networks, both
   optimizers, the log-std, the minibatch generator, the counters, the history), written
   by rename: ``--resume`` after a kill continues to the result the uninterrupted run
   would have reached on the same machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.algorithms.finetune_config import FinetuneConfig
from pipeline.core.differences import first_difference
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_dir, read_json_object, write_json
from pipeline.core.run_files import POLICY_DIR
from pipeline.rollout.cluster import LOCAL, Backend
from pipeline.rollout.options import is_motion_env

if TYPE_CHECKING:
    from pipeline.algorithms.ppo import PPO, Anchor, Batch
    from pipeline.rollout.segments import Segment
    from pipeline.tracking.base import Tracker

FINETUNE_FILE = "finetune.json"
"""What the run produced: the rows of every update, the selections, the published policy."""
REQUEST_FILE = "finetune_request.json"
"""The arguments a ``--resume`` must repeat (written before the first update)."""
CHECKPOINT_FILE = "checkpoint.npz"
"""Everything a resumed run needs, replaced by rename after every update."""
CURVE_FILE = "finetune_curve.png"
"""Selection survival and pose reward against environment steps."""


@dataclass(frozen=True)
class FinetuneRequest:
    """A fine-tuning run as the command line (or a benchmark) asks for it."""

    policy: str
    """The starting policy: a policy or run directory, ``runs:/`` or ``models:/`` URI."""
    out: Path
    config: FinetuneConfig
    env_id: str | None = None
    """The environment (default: the policy's own; any other is refused)."""
    anchor_data: Path | None = None
    """Demonstrations for ``anchor.source: demos``."""
    workers: int = 1
    backend: Backend = LOCAL
    resume: bool = False
    tracking_uri: str | None = None
    """MLflow store; None: no tracking."""

    def recorded(self) -> dict[str, Any]:
        """What a ``--resume`` must repeat exactly (workers and backend may change: a
        segment's steps do not depend on which worker ran it)."""
        return {
            "policy": self.policy,
            "env_id": self.env_id,
            "anchor_data": None if self.anchor_data is None else str(self.anchor_data.resolve()),
            "config": self.config.model_dump(mode="json"),
        }


@dataclass
class UpdateRow:
    """One update's training metrics."""

    update: int
    env_steps: int
    phase: str
    """``warmup`` (critic only) or ``ppo``."""
    episodes: int
    """Training episodes that ended (fall or horizon) in this update's segments."""
    survival: float
    """Share of those that ended at the horizon, not in a fall."""
    mean_return: float
    mean_length: float
    pose_reward: float
    value_loss: float
    policy_loss: float = math.nan
    anchor_loss: float = math.nan
    anchor_weight: float = 0.0
    approx_kl: float = math.nan
    clip_fraction: float = math.nan
    epochs: float = math.nan
    log_std: float = math.nan
    """Mean learned log standard deviation (policy's action-std units)."""
    steps_per_s: float = math.nan
    """Environment steps per second per worker in this update's rollouts, the anchor's
    expert labels included."""
    rollout_steps_per_s: float = math.nan
    """The same without the expert labels: the policy acting in the simulator."""
    bare_steps_per_s: float = math.nan
    """The same steps per second of time inside the simulator alone (reset and step): the
    rollouts' rate without the policy and bookkeeping."""
    wall_s: float = 0.0


@dataclass
class SelectionRow:
    """One closed-loop evaluation of the deterministic policy on the selection seeds."""

    update: int
    env_steps: int
    survival: float
    normalized_distance: float
    normalized_pose_reward: float
    distance: float
    published: bool


@dataclass
class FinetuneResult:
    """What ``pipeline finetune`` prints and writes to ``DIR/finetune.json``."""

    out_dir: str
    env_id: str
    policy_dir: str = ""
    env_steps: int = 0
    updates: int = 0
    rows: list[UpdateRow] = field(default_factory=list)
    selections: list[SelectionRow] = field(default_factory=list)
    expert: dict[str, float] = field(default_factory=dict)
    """The expert's selection-seed score (same keys as a selection row)."""
    start: dict[str, float] = field(default_factory=dict)
    """The starting policy's selection-seed score."""
    run_id: str | None = None
    wall_s: float = 0.0
    """Wall-clock seconds of the whole run, summed over the sessions a resumed run took."""
    resumed_from_update: int = 0

    def best(self) -> SelectionRow | None:
        published = [s for s in self.selections if s.published]
        return published[-1] if published else None


# -- checks (no TensorFlow) ------------------------------------------------------------


def check_request(request: FinetuneRequest) -> str:
    """Every cheap check of the inputs, before anything heavy; returns the env id."""
    from pipeline.rollout.policy_source import is_mlflow_uri, local_policy_env

    if request.workers < 1:
        raise PipelineError(f"--workers: must be >= 1, got {request.workers}")
    out = request.out
    if request.resume:
        if not (out / REQUEST_FILE).is_file():
            raise PipelineError(f"--resume {out}: no fine-tuning run to resume there")
        _check_same_request(out, request)
    elif out.exists() and any(out.iterdir()):
        raise PipelineError(
            f"--out {out}: already exists and is not empty "
            "(use --resume to continue the run there, or another --out)"
        )
    check_output_dir(out, "--out")
    policy_env = None
    if not is_mlflow_uri(request.policy):
        if not Path(request.policy).exists():
            raise PipelineError(f"--policy {request.policy}: not found")
        policy_env = local_policy_env(request.policy)
        _check_state_policy(Path(request.policy))
    if policy_env is not None:
        _check_policy_env(request, policy_env)
    env_id = request.env_id or policy_env
    if env_id is not None:
        _check_env(env_id, request.config)
    _check_anchor(request, env_id)
    return env_id or ""


def _check_state_policy(path: Path) -> None:
    from models.policy_files import SPEC_FILE
    from pipeline.core.run_files import POLICY_DIR as SUBDIR

    spec_file = path / SPEC_FILE if (path / SPEC_FILE).is_file() else path / SUBDIR / SPEC_FILE
    if not spec_file.is_file():
        return  # loading reports what it is
    spec = read_json_object(spec_file, f"--policy {path}")
    _check_state_spec(str(path), spec.get("camera"), spec.get("inputs", "state"),
                      int(spec.get("history", 1)))  # fmt: skip


def _check_state_spec(policy: str, camera: Any, inputs: str, history: int) -> None:
    """Fine-tuning takes a policy of the current state alone (a spec file read before
    loading, or a loaded policy's spec, e.g. one an MLflow URI named)."""
    if camera is not None or inputs != "state":
        raise PipelineError(
            f"--policy {policy}: a camera policy; fine-tuning takes a state "
            "policy (its rollouts would render every step)"
        )
    if history != 1:
        raise PipelineError(
            f"--policy {policy}: acts on a history of {history} "
            "observations; fine-tuning takes a policy of the current one"
        )


def _check_policy_env(request: FinetuneRequest, policy_env: str) -> None:
    if request.env_id is not None and request.env_id != policy_env:
        raise PipelineError(
            f"--policy {request.policy}: trained on {policy_env}, not {request.env_id}"
        )


def _check_env(env_id: str, config: FinetuneConfig) -> None:
    import sim

    if env_id not in sim.ENV_IDS:
        raise PipelineError(
            f"--env: unknown environment '{env_id}' (one of {', '.join(sim.ENV_IDS)})"
        )
    if (
        config.anchor.source == "expert"
        and config.anchor.weight > 0
        and env_id not in sim.EXPERT_FOR_ENV
    ):
        raise PipelineError(
            f"anchor.source=expert: no shipped expert for {env_id} "
            "(use anchor.source=demos with --anchor-data)"
        )


def _check_anchor(request: FinetuneRequest, env_id: str | None) -> None:
    from pipeline.algorithms.train_config import recorded_env

    source = request.config.anchor.source
    data = request.anchor_data
    if source == "demos" and data is None:
        raise PipelineError("anchor.source=demos needs --anchor-data FILE.h5")
    if data is None:
        return
    if source != "demos":
        raise PipelineError(
            f"--anchor-data {data}: given, but anchor.source is {source} (set anchor.source=demos)"
        )
    if not data.is_file():
        raise PipelineError(f"--anchor-data {data}: file not found")
    recorded = recorded_env(data)
    if recorded is None:
        raise PipelineError(f"--anchor-data {data}: not a readable demonstration file")
    if env_id is not None and recorded != env_id:
        raise PipelineError(
            f"--anchor-data {data}: recorded in {recorded}, the policy acts in {env_id}"
        )


def _check_same_request(out: Path, request: FinetuneRequest) -> None:
    stored = read_json_object(out / REQUEST_FILE, f"--resume {out}")
    given = request.recorded()
    # A key added to the config since the run started counts at its default; a stored
    # config that no longer validates is reported as the difference below.
    with contextlib.suppress(ValueError):
        config = FinetuneConfig.model_validate(stored.get("config"))
        if config.steps < request.config.steps:  # an extension: the run goes on further
            config = config.model_copy(update={"steps": request.config.steps})
        stored["config"] = config.model_dump(mode="json")
    for key in given:
        if stored.get(key) != given[key]:
            difference = first_difference(stored.get(key), given[key], key)
            raise PipelineError(f"--resume {out}: {difference}; a run with other arguments "
                                "is a new --out")  # fmt: skip


# -- the run ---------------------------------------------------------------------------


def finetune(
    request: FinetuneRequest,
    on_update: Callable[[UpdateRow], None] | None = None,
    on_selection: Callable[[SelectionRow], None] | None = None,
) -> FinetuneResult:
    """Run (or resume) the fine-tuning ``request`` describes; see the module docstring."""
    return run_checked(request, check_request(request), on_update, on_selection)


def run_checked(
    request: FinetuneRequest,
    env_id: str,
    on_update: Callable[[UpdateRow], None] | None = None,
    on_selection: Callable[[SelectionRow], None] | None = None,
) -> FinetuneResult:
    """:func:`finetune` for a request :func:`check_request` passed (``env_id``: what it
    returned). A policy named by an MLflow URI is checked here, once it is loaded."""
    start = time.perf_counter()
    from pipeline.rollout.policy_source import is_mlflow_uri, resolve_policy_source

    resolved = resolve_policy_source(request.policy, request.tracking_uri)
    try:
        loaded = resolved.loaded
        spec = loaded.spec
        if is_mlflow_uri(request.policy):  # the checks its spec file would have had
            _check_state_spec(request.policy, spec.camera, spec.inputs, spec.history)
            _check_policy_env(request, spec.env_id)
            if spec.env_id != env_id:
                _check_env(spec.env_id, request.config)
                _check_anchor(request, spec.env_id)
        env_id = spec.env_id
        out = request.out
        out.mkdir(parents=True, exist_ok=True)
        # On a resume the request differs at most by more steps (checked): record them.
        write_json(out / REQUEST_FILE, request.recorded())
        return _run(request, env_id, loaded, start, on_update, on_selection)
    finally:
        if resolved.download_dir is not None:
            shutil.rmtree(resolved.download_dir, ignore_errors=True)


def _run(
    request: FinetuneRequest,
    env_id: str,
    loaded: Any,
    start: float,
    on_update: Callable[[UpdateRow], None] | None,
    on_selection: Callable[[SelectionRow], None] | None,
) -> FinetuneResult:
    from pipeline.rollout.closed_loop_judge import ClosedLoopJudge
    from pipeline.rollout.segments import SegmentWorker
    from pipeline.rollout.workers import make_pool
    from pipeline.tracking import DEFAULT_EXPERIMENT
    from pipeline.tracking.keys import run_name
    from pipeline.tracking.mlflow_tracker import open_tracker
    from pipeline.training.runtime import seeded_runtime

    config = request.config
    out = request.out
    spec = loaded.spec
    result = FinetuneResult(out_dir=str(out), env_id=env_id)
    with seeded_runtime(config.seed):
        learner = _build_learner(loaded, config)
        state = _load_checkpoint(out, learner) if request.resume else {}
        counters = Counters.restore(state)
        result.rows = [UpdateRow(**r) for r in state.get("rows", [])]
        result.selections = [SelectionRow(**r) for r in state.get("selections", [])]
        result.expert, result.start = state.get("expert", {}), state.get("start", {})
        result.resumed_from_update = counters.update
        demos = None
        if config.anchor.source == "demos":
            demos = _demo_anchor(request.anchor_data)
        # Selections run on local processes even with --backend ray: actors of their own
        # would wait for the CPUs the rollout actors hold.
        judge = ClosedLoopJudge(
            env_id, spec, config.selection.episodes, config.selection.seed, request.workers
        )
        with open_tracker(
            request.tracking_uri,
            DEFAULT_EXPERIMENT,
            run_name("finetune", env_id, f"seed{config.seed}"),
            tags={"stage": "finetune", "env_id": env_id},
            resume_run_id=state.get("run_id"),
        ) as tracker:
            result.run_id = tracker.run_id
            if counters.update == 0:
                params = {"finetune": config.model_dump(mode="json"), "policy": request.policy}
                tracker.log_params({**params, "env_id": env_id})
                result.start = _select(judge, learner, result, -1, 0, out, spec, tracker, None)
                result.expert = _baseline_score(judge)
            factory = partial(SegmentWorker, env_id, _training_env_kwargs(env_id, config))
            with make_pool(factory, request.workers, request.backend) as pool:
                while counters.env_steps < config.steps:
                    row = _update(pool, learner, config, counters, demos, spec)
                    result.rows.append(row)
                    tracker.log_metrics(_metric_dict(row), step=counters.env_steps)
                    if on_update:
                        on_update(row)
                    if counters.selection_due(config):
                        _select(
                            judge,
                            learner,
                            result,
                            counters.update,
                            counters.env_steps,
                            out,
                            spec,
                            tracker,
                            on_selection,
                            config.selection.min_pose_reward,
                        )
                    meta = counters.meta(time.perf_counter() - start)
                    _save_checkpoint(out, learner, {**meta, **_result_state(result)})
            result.env_steps, result.updates = counters.env_steps, counters.update
            result.policy_dir = str(out / POLICY_DIR)
            result.wall_s = counters.earlier_s + time.perf_counter() - start
            _finish(result, config, out, tracker)
    return result


@dataclass
class Counters:
    """Where a run stands: what a checkpoint records beside the arrays and the rows."""

    update: int = 0
    """Updates done (warm-up included)."""
    env_steps: int = 0
    policy_updates: int = 0
    """Updates that moved the policy (the anchor decays and selections count by these)."""
    earlier_s: float = 0.0
    """Wall seconds of the sessions before this one."""

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Counters:
        return cls(
            int(state.get("update", 0)),
            int(state.get("env_steps", 0)),
            int(state.get("policy_updates", 0)),
            float(state.get("wall_s", 0.0)),
        )

    def selection_due(self, config: FinetuneConfig) -> bool:
        """After every ``selection.every`` policy updates, and after the last update."""
        if self.update <= config.critic.warmup_updates:
            return False
        every = self.policy_updates % config.selection.every == 0
        return every or self.env_steps >= config.steps

    def meta(self, session_s: float) -> dict[str, Any]:
        return {
            "update": self.update,
            "env_steps": self.env_steps,
            "policy_updates": self.policy_updates,
            "wall_s": self.earlier_s + session_s,
        }


def _result_state(result: FinetuneResult) -> dict[str, Any]:
    """What of the result a checkpoint keeps: the run, its rows and selections, baselines."""
    return {
        "run_id": result.run_id,
        "rows": [asdict(r) for r in result.rows],
        "selections": [asdict(s) for s in result.selections],
        "expert": result.expert,
        "start": result.start,
    }


def _update(
    pool: Any,
    learner: PPO,
    config: FinetuneConfig,
    counters: Counters,
    demos: tuple[np.ndarray, np.ndarray] | None,
    spec: Any,
) -> UpdateRow:
    """One update: gather the segments, fit the critic alone (warm-up) or run PPO with the
    anchor's weight of the moment; advances ``counters``."""
    warmup = counters.update < config.critic.warmup_updates
    anchor = config.anchor
    weight = max(anchor.weight * anchor.decay**counters.policy_updates, anchor.min_weight)
    segments, wall = _collect(pool, learner, config, counters.update, spec)
    batch, anchor = _batch(learner, segments, config, demos, weight)
    if warmup:
        metrics: dict[str, float] = {}
        for _ in range(config.critic.warmup_epochs):
            metrics = learner.update(batch, None, train_policy=False)
    else:
        metrics = learner.update(batch, anchor)
        counters.policy_updates += 1
    counters.env_steps += len(batch.obs)
    weight = weight if not warmup and anchor is not None else 0.0
    row = _row(counters, warmup, segments, metrics, learner, weight, wall)
    counters.update += 1
    return row


def _build_learner(loaded: Any, config: FinetuneConfig) -> PPO:
    from pipeline.algorithms.ppo import PPO, GaussianPolicy, value_network

    spec = loaded.spec
    exploration = config.exploration
    model = loaded.model
    if config.from_scratch:
        import keras

        # New layers from the same configs: the initial weights (the initializers carry
        # their seeds), the same normalization.
        model = keras.models.clone_model(model)
    policy = GaussianPolicy(
        model,
        np.sqrt(np.asarray(spec.act_variance, np.float32)),
        exploration.log_std,
        (exploration.min_log_std, exploration.max_log_std),
    )
    critic = value_network(
        np.asarray(spec.obs_mean, np.float32),
        np.asarray(spec.obs_variance, np.float32),
        config.critic.hidden_sizes,
        1.0 / (1.0 - config.ppo.gamma),
    )
    ppo = config.ppo
    return PPO(
        policy,
        critic,
        policy_lr=ppo.policy_lr,
        log_std_lr=ppo.log_std_lr,
        value_lr=ppo.value_lr,
        max_grad_norm=ppo.max_grad_norm,
        clip=ppo.clip,
        epochs=ppo.epochs,
        minibatch=ppo.minibatch,
        target_kl=ppo.target_kl,
        seed=config.seed,
    )


def _training_env_kwargs(env_id: str, config: FinetuneConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if is_motion_env(env_id):
        kwargs["start_phase"] = "random"  # DeepMimic's reference-state initialisation
    if config.curriculum.episode_seconds is not None:
        kwargs["episode_seconds"] = config.curriculum.episode_seconds
    return kwargs


def _collect(
    pool: Any, learner: PPO, config: FinetuneConfig, update: int, spec: Any
) -> tuple[list[Segment], float]:
    """This update's segments, each a function of (seed, update, segment index)."""
    from models.inference import compile_numpy
    from pipeline.rollout.segments import Curriculum, SegmentTask

    curriculum = config.curriculum
    forward = compile_numpy(learner.policy.mean_model, check=False)
    std = learner.policy.std()
    scale = np.sqrt(np.asarray(spec.act_variance, np.float64))
    steps = config.steps_per_update // config.segments
    extra = config.steps_per_update - steps * config.segments
    labels = config.anchor.source == "expert" and config.anchor.weight > 0
    tasks = [
        SegmentTask(
            forward,
            std,
            scale,
            steps + (1 if i < extra else 0),
            seed=_segment_seed(config.seed, update, i),
            curriculum=Curriculum(
                curriculum.push_probability, tuple(curriculum.push_impulse), curriculum.action_noise
            ),
            expert_labels=labels,
            envs=config.segment_envs,
        )
        for i in range(config.segments)
    ]
    began = time.perf_counter()
    segments = pool.run(tasks)
    return segments, time.perf_counter() - began


def _segment_seed(seed: int, update: int, index: int) -> int:
    """A segment's seed: one integer from (run seed, update, segment)."""
    return int(np.random.SeedSequence([seed, update, index]).generate_state(1)[0])


def _batch(
    learner: PPO,
    segments: list[Segment],
    config: FinetuneConfig,
    demos: tuple[np.ndarray, np.ndarray] | None,
    weight: float,
) -> tuple[Batch, Anchor | None]:
    """The update's flattened batch with GAE advantages, and its anchor pairs."""
    from pipeline.algorithms.ppo import Anchor, segments_batch

    batch = segments_batch(segments, learner.values, config.ppo.gamma, config.ppo.lam)
    anchor = None
    if config.anchor.source == "expert" and config.anchor.weight > 0:
        labels = np.concatenate([s.expert_actions for s in segments])  # type: ignore[misc]
        anchor = Anchor(batch.obs, labels, weight)
    elif demos is not None:
        anchor = Anchor(demos[0], demos[1], weight)
    return batch, anchor


def _demo_anchor(path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Every (observation, action) pair of the demonstration file."""
    from datasets import open_dataset

    assert path is not None
    obs, actions = [], []
    with open_dataset(path) as ds:
        for episode_id in ds.episode_ids():
            view = ds.episode(episode_id)
            obs.append(np.asarray(view.observations[:-1], np.float32))
            actions.append(np.asarray(view.actions, np.float32))
    return np.concatenate(obs), np.concatenate(actions)


def _row(
    counters: Counters,
    warmup: bool,
    segments: list[Segment],
    metrics: dict[str, float],
    learner: PPO,
    anchor_weight: float,
    wall: float,
) -> UpdateRow:
    """The update's row (``counters`` as they stand after it, before the update count)."""
    episodes = [e for s in segments for e in s.episodes]

    def mean(key: str) -> float:
        return float(np.mean([e[key] for e in episodes])) if episodes else math.nan

    steps = sum(len(s.obs) for s in segments)
    worker_s = sum(s.wall_s for s in segments)
    sim_s = sum(s.sim_s for s in segments)
    rollout_s = worker_s - sum(s.label_s for s in segments)
    return UpdateRow(
        update=counters.update,
        env_steps=counters.env_steps,
        phase="warmup" if warmup else "ppo",
        episodes=len(episodes),
        survival=1.0 - mean("fell") if episodes else math.nan,
        mean_return=mean("return"),
        mean_length=mean("steps"),
        pose_reward=mean("pose_reward"),
        value_loss=metrics.get("value_loss", math.nan),
        policy_loss=metrics.get("policy_loss", math.nan),
        anchor_loss=metrics.get("anchor_loss", math.nan),
        anchor_weight=anchor_weight,
        approx_kl=metrics.get("approx_kl", math.nan),
        clip_fraction=metrics.get("clip_fraction", math.nan),
        epochs=metrics.get("epochs", math.nan),
        log_std=float(np.mean(learner.policy.clipped_log_std().numpy())),
        steps_per_s=steps / worker_s if worker_s > 0 else math.nan,
        rollout_steps_per_s=steps / rollout_s if rollout_s > 0 else math.nan,
        bare_steps_per_s=steps / sim_s if sim_s > 0 else math.nan,
        wall_s=wall,
    )


def _metric_dict(row: UpdateRow) -> dict[str, float]:
    skip = {"update", "env_steps", "phase"}
    return {
        f"train/{k}": float(v)
        for k, v in asdict(row).items()
        if k not in skip and isinstance(v, int | float) and math.isfinite(v)
    }


# -- selection -------------------------------------------------------------------------


def _baseline_score(judge: Any) -> dict[str, float]:
    from pipeline.rollout.episodes import summarize
    from pipeline.rollout.scores import mean_of

    expert, _ = judge.baselines()
    summary = summarize(expert)
    return {
        "survival": float(summary["survival_rate"]),
        "distance": mean_of(summary, "distance"),
        "normalized_distance": 1.0,
        "normalized_pose_reward": 1.0,
    }


def _select(
    judge: Any,
    learner: PPO,
    result: FinetuneResult,
    update: int,
    env_steps: int,
    out: Path,
    spec: Any,
    tracker: Tracker,
    on_selection: Callable[[SelectionRow], None] | None,
    min_pose: float | None = None,
) -> dict[str, float]:
    """Score the deterministic policy on the selection seeds; publish it when it is the
    best so far (the starting policy, ``update`` -1, is the first candidate). With
    ``min_pose``, a fine-tuned candidate whose pose reward is below that share of the
    expert's is not published, however well it survives."""

    score = judge(learner.policy.mean_model)
    better = publishes(score, result.best(), update, min_pose)
    row = SelectionRow(
        update=update,
        env_steps=env_steps,
        survival=score["survival"],
        normalized_distance=score["normalized_distance"],
        normalized_pose_reward=score.get("normalized_pose_reward", math.nan),
        distance=score["distance"],
        published=better,
    )
    if better:
        _publish(learner, spec, out, update)
    result.selections.append(row)
    tracker.log_metrics(
        {f"select/{k}": float(v) for k, v in score.items() if math.isfinite(v)}, step=env_steps
    )
    if on_selection:
        on_selection(row)
    return score


def publishes(score: dict[str, float], best: SelectionRow | None, update: int,
              min_pose: float | None) -> bool:  # fmt: skip
    """Whether a candidate with ``score`` replaces the published ``best``: the first one
    always; then one that ranks higher (survival, then normalized distance or pose reward)
    and, after fine-tuning (``update`` >= 0) with ``min_pose``, keeps at least that share
    of the expert's pose reward where the task has one."""
    from pipeline.rollout.closed_loop_judge import score_key

    if best is None:
        return True
    pose = score.get("normalized_pose_reward", math.nan)
    keeps_gait = update < 0 or min_pose is None or not math.isfinite(pose) or pose >= min_pose
    return keeps_gait and score_key(score) > score_key(_as_score(best))


def _as_score(row: SelectionRow) -> dict[str, float]:
    return {
        "survival": row.survival,
        "normalized_distance": row.normalized_distance,
        "normalized_pose_reward": row.normalized_pose_reward,
    }


def _publish(learner: PPO, spec: Any, out: Path, update: int) -> None:
    """The deterministic policy as ``DIR/policy`` (replacing a worse one)."""
    from models import save_policy

    save_policy(
        out / POLICY_DIR,
        learner.policy.mean_model,
        spec,
        {"finetune_update": update, "log_std": learner.policy.log_std.numpy().tolist()},
        overwrite=True,
    )


# -- checkpoints -----------------------------------------------------------------------


def _save_checkpoint(out: Path, learner: PPO, meta: dict[str, Any]) -> None:
    """All state in one file, replaced by rename (a kill leaves the previous one)."""
    arrays = learner.state()
    meta = {**meta, "rng": learner.rng.bit_generator.state}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{CHECKPOINT_FILE}.", suffix=".tmp")
    try:
        with open(fd, "wb") as fh:
            fh.write(buffer.getvalue())
        Path(tmp).replace(out / CHECKPOINT_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_checkpoint(out: Path, learner: PPO) -> dict[str, Any]:
    """The saved state put back into ``learner``; {} when no update finished yet."""
    path = out / CHECKPOINT_FILE
    if not path.is_file():
        return {}
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    learner.load_state(arrays)
    learner.rng.bit_generator.state = meta.pop("rng")
    return meta


# -- the end ---------------------------------------------------------------------------


def _finish(result: FinetuneResult, config: FinetuneConfig, out: Path, tracker: Tracker) -> None:
    from pipeline.reports.curve_plots import plot_finetune_curve

    plot_finetune_curve({"fine-tuned": result.selections}, result.start, result.expert,
                        out / CURVE_FILE)  # fmt: skip
    tracker.log_artifact(out / CURVE_FILE, "plots")
    write_json(
        out / FINETUNE_FILE,
        {"command": "finetune", "config": config.model_dump(mode="json"), **asdict(result)},
    )
    tracker.log_artifact(out / FINETUNE_FILE)
    if tracker.run_id is not None:
        from models import load_policy

        loaded = load_policy(out / POLICY_DIR)
        tracker.log_keras_policy(
            loaded.model, loaded.spec.example_inputs(), policy_dir=out / POLICY_DIR
        )
