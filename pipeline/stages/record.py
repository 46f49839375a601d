"""The record stage: run the expert in worker processes and commit demonstrations.

Attempt ``n`` resets the environment with a seed derived from ``(seed, n)`` only and is
committed (or logged as dropped) strictly in attempt order, so the same arguments give
the same episodes in the same order whatever ``workers`` is and however often the
recording was interrupted and resumed.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from itertools import count
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym

import sim
from datasets import (
    CameraSpec,
    DatasetMetadata,
    Episode,
    EpisodeWriter,
    SpaceSpec,
    open_dataset,
)
from pipeline.core.errors import PipelineError
from pipeline.rollout.cluster import LOCAL, Backend
from pipeline.rollout.demonstration import DemoTask, Lead
from pipeline.rollout.options import (
    episode_step_limit,
    is_motion_env,
    parse_camera,
    parse_start_phase,
)
from pipeline.rollout.policies import LearnedPolicy
from pipeline.rollout.workers import demo_pool

WriteMode = Literal["create", "append", "overwrite", "resume"]
# Arguments that define which episodes a recording produces; a resume must keep them.
DEFINING_ARGS = ("env_id", "expert", "seed", "noise", "start_phase", "episode_seconds",
                 "keep_failed", "beta", "learner", "lead_seconds", "lead_share", "camera",
                 "camera_view", "compression")  # fmt: skip


@dataclass(frozen=True)
class RecordConfig:
    """What ``pipeline record`` was asked to do (validated by :func:`validate_config`)."""

    out: Path
    """The demonstration file to write."""
    env_id: str = "sim/HumanoidWalk-v0"
    """Environment id."""
    expert: str = "expert"
    """'expert' (the env's shipped expert) or an expert name."""
    episodes: int = 50
    """Episodes to add (create/overwrite/append) or to reach in total (resume)."""
    seed: int = 0
    """Base seed; attempt n resets with a seed derived from (seed, n)."""
    workers: int = 1
    """Worker processes that run whole episodes."""
    backend: Backend = LOCAL
    """Where the workers run: local processes or Ray actors (the episodes are the same)."""
    start_phase: str | None = None
    """Motion envs only: '0', 'random' or a phase in [0, 1); None means 'random' for these
    (from phase 0 every episode of a deterministic expert would be the same)."""
    episode_seconds: float | None = None
    """Motion envs only: episode length in simulated seconds."""
    camera: str | None = None
    """``WxH``: store a camera frame of every state (rendered in the workers)."""
    camera_view: str = "follow"
    """Where the camera looks from: ``follow`` (behind the character) or ``side``."""
    noise: float = 0.0
    """DART noise: Gaussian noise of this many expert action scales on executed actions."""
    keep_failed: bool = False
    """Keep episodes in which the expert fell (dropped and logged otherwise)."""
    mode: WriteMode = "create"
    """create a new file, overwrite one, append to a compatible one, or resume one."""
    compression: str | None = None
    """Compression of this session's arrays: gzip[:level], lzf or none; None: gzip (level 4)
    for a new file, the file's own when appending to or resuming one."""
    max_attempts: int | None = None
    """Give up after this many attempts in this session (default 10 x episodes + 10)."""
    beta: float = 1.0
    """Probability that the expert acts at each step; below 1 ``learner`` acts on the
    others and the expert labels every visited state afterwards (DAgger)."""
    learner: str | None = None
    """Policy directory of the learner mixed with the expert when ``beta`` < 1."""
    lead_seconds: float = 0.0
    """DAgger: the learner alone drives each episode first for a seeded random time up to
    this, unlabelled; the episode stored is the ``episode_seconds`` window after it (or
    before the learner's fall during it). Needs ``learner`` and ``episode_seconds``."""
    lead_share: float = 1.0
    """The probability that an episode has a lead; the others start at the reset."""
    provenance: dict[str, Any] | None = None
    """Extra facts stored with this session's recording arguments (DAgger's iteration);
    the learner's digest is added by :func:`record`."""

    def defining_args(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in DEFINING_ARGS}


@dataclass
class RecordSummary:
    """What one ``pipeline record`` session did."""

    path: str
    """The demonstration file."""
    committed: int = 0
    """Episodes committed in this session."""
    dropped_fell: int = 0
    """Attempts dropped because the expert fell."""
    rejected: int = 0
    """Attempts rejected because of non-finite values."""
    attempts: int = 0
    """Attempts run in this session."""
    steps: int = 0
    """Steps committed in this session."""
    start_episodes: int = 0
    """Episodes in the file when the session started."""
    total_episodes: int = 0
    """Episodes in the file at the end."""
    target_episodes: int = 0
    """Episodes the recording aims at in total."""
    wall_s: float = 0.0
    """Wall-clock seconds of the session."""
    rollout_s: float = 0.0
    """Seconds the workers spent running episodes, summed over workers."""
    relabel_s: float = 0.0
    """Seconds the workers spent on the expert's batched relabelling (mixture episodes)."""
    write_s: float = 0.0
    """Seconds this process spent committing (or logging as dropped) the episodes."""
    write_cpu_s: float = 0.0
    """CPU seconds of those commits: ``write_s`` without the time spent waiting for a core
    while the workers simulate, or for the disk (fsync)."""
    file_bytes: int = 0
    """Size of the file at the end."""
    next_attempt: int = 0
    """Where a resume would continue."""
    interrupted: bool = False
    """True when stopped by Ctrl-C before reaching the target."""
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved recording arguments."""

    @property
    def episodes_per_s(self) -> float:
        return self.committed / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s if self.wall_s > 0 else math.nan


def env_kwargs_of(config: RecordConfig) -> dict[str, Any]:
    """Constructor arguments of the recording environment."""
    kwargs: dict[str, Any] = {}
    if config.start_phase is not None:
        kwargs["start_phase"] = parse_start_phase(config.start_phase)
    elif is_motion_env(config.env_id):
        kwargs["start_phase"] = "random"
    if config.episode_seconds is not None:
        # A lead runs before the window, within the same episode.
        kwargs["episode_seconds"] = config.episode_seconds + config.lead_seconds
    return kwargs


def lead_of(config: RecordConfig) -> Lead | None:
    """The recording's lead (None without one); its window's step limit is that of an
    ``episode_seconds`` episode of the env."""
    if not config.lead_seconds:
        return None
    if config.learner is None or config.episode_seconds is None:
        raise PipelineError("a lead (lead_seconds) needs a learner and episode_seconds")
    window = {**env_kwargs_of(config), "episode_seconds": config.episode_seconds}
    steps = episode_step_limit(config.env_id, window)
    return Lead(config.lead_seconds, config.episode_seconds, steps, config.lead_share)


def camera_spec(config: RecordConfig) -> CameraSpec | None:
    """The recording's camera (``--camera WxH`` and ``--camera-view``), None without one."""
    if config.camera is None:
        return None
    width, height = parse_camera(config.camera)
    return CameraSpec(width, height, config.camera_view)


def camera_env_kwargs(camera: CameraSpec | None) -> dict[str, Any]:
    """Environment arguments that make ``env.render()`` return the camera's frames."""
    if camera is None:
        return {}
    return {"render_mode": "rgb_array", "render_width": camera.width,
            "render_height": camera.height, "render_view": camera.view}  # fmt: skip


def resolve_resume(config: RecordConfig, given: set[str]) -> tuple[RecordConfig, int]:
    """Fill a resume's arguments from the file and check the ones the user gave agree.

    Returns the config to use and the target number of episodes in the file.
    """
    with open_dataset(config.out) as ds:
        sessions = [s for s in ds.sessions if s.get("kind") in ("create", "append")]
    args = (sessions[-1].get("recording_args") or {}) if sessions else {}
    if "target_episodes" not in args:
        raise PipelineError(f"--resume {config.out}: file was not written by 'pipeline record'")
    # Files recorded before an argument existed keep its default.
    stored = {k: args[k] for k in DEFINING_ARGS if k in args}
    for key in stored:
        if key in given and getattr(config, key) != stored[key]:
            option = "--" + key.replace("_id", "").replace("_", "-")
            raise PipelineError(
                f"{option}: {getattr(config, key)!r} differs from the recording being resumed "
                f"({stored[key]!r} in {config.out})"
            )
    return replace(config, **stored), int(args["target_episodes"])


def record(
    config: RecordConfig,
    given: set[str] | None = None,
    on_episode: Callable[[RecordSummary, Episode], None] | None = None,
) -> RecordSummary:
    """Record demonstrations as ``config`` says; ``given`` names options set explicitly
    (for a resume, which takes the others from the file)."""
    target = 0
    if config.mode == "resume":
        config, target = resolve_resume(config, given or set())
    expert_name = sim.EXPERT_FOR_ENV[config.env_id] if config.expert == "expert" else config.expert
    env_kwargs = env_kwargs_of(config)
    env = gym.make(config.env_id, **env_kwargs)
    try:
        obs_spec = SpaceSpec.from_space(env.observation_space)
        act_spec = SpaceSpec.from_space(env.action_space)
    finally:
        env.close()
    expert = sim.load_expert(expert_name)
    learner = None
    if config.learner is not None:
        learner, digest = _load_learner(Path(config.learner))
        config = replace(config, provenance={**(config.provenance or {}), "learner_digest": digest})
    camera = camera_spec(config)
    writer = _open_writer(config, expert_name, obs_spec, act_spec, env_kwargs, camera)
    # The camera's arguments reach the workers only: the file's env_kwargs stay those of
    # the simulation, and its camera is its own attribute.
    worker_kwargs = {**env_kwargs, **camera_env_kwargs(camera)}
    resolved = {**asdict(config), "out": str(config.out), "expert_id": expert_name}
    summary = RecordSummary(path=str(config.out), config=resolved)
    start = time.perf_counter()
    try:
        if config.mode != "resume":
            target = writer.episode_count + config.episodes
        summary.target_episodes = target
        summary.start_episodes = writer.episode_count
        _record_into(writer, config, expert, worker_kwargs, target, summary, on_episode,
                     learner)  # fmt: skip
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.wall_s = time.perf_counter() - start
        writer.close()
        summary.total_episodes = writer.episode_count
        summary.next_attempt = writer.next_attempt
        summary.file_bytes = config.out.stat().st_size
    return summary


def _load_learner(directory: Path) -> tuple[LearnedPolicy, str]:
    """The learner's NumPy forward pass and a digest of its saved files (the manifest holds
    each file's checksum)."""
    from models import PolicyLoadError, load_policy
    from models.policy_files import MANIFEST_FILE

    try:
        loaded = load_policy(directory)
    except PolicyLoadError as exc:
        raise PipelineError(f"learner {directory}: {exc}") from None
    digest = hashlib.sha256((directory / MANIFEST_FILE).read_bytes()).hexdigest()
    return LearnedPolicy.from_loaded(loaded), "sha256:" + digest


def _open_writer(
    config: RecordConfig,
    expert_name: str,
    obs_spec: SpaceSpec,
    act_spec: SpaceSpec,
    env_kwargs: dict[str, Any],
    camera: CameraSpec | None,
) -> EpisodeWriter:
    args = {**config.defining_args(), **(config.provenance or {})}
    if config.mode == "resume":
        return EpisodeWriter.resume(config.out, recording_args={**args, "workers": config.workers},
                                    compression=config.compression)  # fmt: skip
    existing = 0
    if config.mode == "append":
        with open_dataset(config.out) as ds:
            existing = len(ds)
    args["target_episodes"] = existing + config.episodes
    meta = DatasetMetadata(
        env_id=config.env_id,
        observation_space=obs_spec,
        action_space=act_spec,
        env_kwargs=env_kwargs,
        expert_id=expert_name,
        noise_scale=config.noise,
        recording_args=args,
        camera=camera,
    )
    if config.mode == "append":
        return EpisodeWriter.append(config.out, meta, compression=config.compression)
    return EpisodeWriter.create(config.out, meta, overwrite=config.mode == "overwrite",
                                compression=config.compression or "gzip")  # fmt: skip


def _record_into(
    writer: EpisodeWriter,
    config: RecordConfig,
    expert: sim.MLPExpert,
    env_kwargs: dict[str, Any],
    target: int,
    summary: RecordSummary,
    on_episode: Callable[[RecordSummary, Episode], None] | None,
    learner: LearnedPolicy | None = None,
) -> None:
    if writer.episode_count >= target:
        return
    budget = config.max_attempts or 10 * max(target - writer.episode_count, 1) + 10
    first = writer.next_attempt
    render = config.camera is not None
    lead = lead_of(config)
    tasks = (DemoTask(n, config.seed, config.noise, beta=config.beta, render=render, lead=lead)
             for n in count(first))  # fmt: skip
    with demo_pool(config.env_id, env_kwargs, expert, config.workers, learner,
                   config.backend) as pool:  # fmt: skip
        for episode in pool.imap(tasks):
            summary.attempts += 1
            summary.rollout_s += episode.timings.get("rollout", 0.0)
            summary.relabel_s += episode.timings.get("relabel", 0.0)
            tick, cpu = time.perf_counter(), time.process_time()
            if episode.fell and not config.keep_failed:
                writer.drop(episode.seed, "fell", attempt=episode.attempt)
                summary.dropped_fell += 1
            else:
                result = writer.commit(episode)
                if result.committed:
                    summary.committed += 1
                    summary.steps += episode.total_steps
                else:
                    summary.rejected += 1
            summary.write_s += time.perf_counter() - tick
            summary.write_cpu_s += time.process_time() - cpu
            if on_episode:
                on_episode(summary, episode)
            if writer.episode_count >= target:
                return
            if summary.attempts >= budget:
                raise PipelineError(
                    f"{config.out}: gave up after {summary.attempts} attempts with "
                    f"{writer.episode_count} of {target} episodes (the expert keeps failing; "
                    "lower --noise, use --keep-failed or raise --max-attempts)"
                )
