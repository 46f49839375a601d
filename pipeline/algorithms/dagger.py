"""DAgger (``pipeline dagger``): behaviour cloning that learns from its own mistakes.

Iteration 0 fits a policy on the initial demonstrations (the train algorithm, as
``pipeline train`` runs it). Iteration i >= 1 rolls out the mixture of expert and the
previous policy, the expert acting at each step with probability
``beta_i = beta * beta_decay ** (i - 1)`` (the learner on its NumPy forward pass); the
expert labels every state visited, and the episodes are appended to an aggregate copy of
the demonstrations through the crash-safe writer, one recording session per iteration
whose arguments record the iteration, beta and the digest of the learner that drove it.
The policy is refitted on the aggregate (from the previous policy's weights unless
``from_scratch``) and evaluated on held-out seeds next to the expert and a random policy,
which run once on the same seeds. It stops after ``iterations`` or when ``max_labels``
expert-labelled steps are spent: an iteration records only as many episodes as fit in the
remaining budget at the length of the longest episode in the aggregate, so the total never
exceeds it. With ``lead_seconds`` the learner first drives alone, unlabelled, and only a
window of each episode is stored (:mod:`pipeline.rollout.demonstration`). With
``final_fits`` the run ends by fitting the aggregate that many more times from scratch and
publishing whichever of those and the last iteration's policy walks best on selection
seeds apart from the evaluation's (:mod:`pipeline.algorithms.fit_selection`).

``DIR/aggregate.h5`` holds the data, ``DIR/iter-NN/`` each iteration's training run,
``DIR/final-fit-k/`` the final fits, ``DIR/policy/`` the final policy (``pipeline evaluate
--policy DIR``) and ``DIR/dagger.json`` the config, one row per iteration and the final
choice.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sim  # noqa: F401  (registers the environments _rollout_step_limit makes)
from datasets import open_dataset
from models.config import config_inputs
from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.algorithms.dagger_config import DaggerConfig
from pipeline.algorithms.fit_selection import Candidate, FinalChoice, FitChoice, select_among_fits
from pipeline.core.differences import first_difference
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_dir, write_json
from pipeline.core.run_files import CHECKPOINT_DIR, POLICY_DIR, TRAINING_RUN_FILE
from pipeline.rollout.episodes import EpisodeResult, summarize
from pipeline.rollout.options import env_kwargs, episode_step_limit
from pipeline.rollout.policy_source import resolve_policy_source
from pipeline.rollout.scores import mean_of
from pipeline.stages.evaluate import (
    EXPERT,
    LEARNER,
    RANDOM,
    EvaluateRequest,
    expert_normalized_scores,
    run_evaluation,
)
from pipeline.stages.record import RecordConfig, record
from pipeline.tracking import Tracker, open_tracker, run_name
from pipeline.training.config import TrainConfig, config_to_dict
from pipeline.training.inputs import open_training_data

AGGREGATE_FILE = "aggregate.h5"
DAGGER_FILE = "dagger.json"
STATE_FILE = "dagger_state.json"
"""The arguments and the finished iterations, rewritten after each (``--resume``)."""
CURVE_FILE = "learning_curve.png"
MIXTURE_COMPRESSION = "none"
"""How the mixture episodes are stored. Their commits run beside the simulating workers and
count against DAgger's rollout time; measured on 3-s walk episodes, an uncompressed commit
takes half the CPU of a gzip one for a file 9% larger (docs/benchmarks/dagger-cost.md)."""


@dataclass
class IterationRow:
    """What one iteration did and how its policy walked."""

    iteration: int
    beta: float
    """Expert's share of the rollout steps (NaN for iteration 0: demonstrations only)."""
    episodes_added: int
    labels: int
    """Expert-labelled steps in the aggregate after this iteration."""
    survival: float
    survival_on_expert_starts: float
    distance: float
    normalized_distance: float
    pose_reward: float
    action_error: float
    """On-policy action error against the expert (policy's normalized units)."""
    val_loss: float
    rollout_s: float
    fit_s: float
    eval_s: float
    policy_dir: str
    sim_s: float = math.nan
    """Worker seconds running the mixture episodes (summed over workers)."""
    relabel_s: float = math.nan
    """Worker seconds of the expert's batched relabelling."""
    append_s: float = math.nan
    """Seconds committing the episodes to the aggregate."""
    append_cpu_s: float = math.nan
    """CPU seconds of those commits (``append_s`` also counts waiting for a core while the
    workers simulate on every core)."""


@dataclass
class DaggerResult:
    """A DAgger run: one row per iteration and where things are."""

    out_dir: str
    env_id: str
    rows: list[IterationRow] = field(default_factory=list)
    expert: dict[str, Any] = field(default_factory=dict)
    """Summary of the expert on the evaluation seeds."""
    random: dict[str, Any] = field(default_factory=dict)
    policy_dir: str = ""
    """The final policy."""
    final: FinalChoice | None = None
    """How the final policy was chosen, with ``final_fits``."""
    run_id: str | None = None
    wall_s: float = 0.0


def check_request(
    init_data: Path, out: Path, config: DaggerConfig, env_id: str | None, resume: bool = False,
    train_config: TrainConfig | None = None,
) -> tuple[str, int]:  # fmt: skip
    """Every check that needs no work, before any: returns the env id and the initial
    number of labelled steps."""
    if train_config is not None and config_inputs(train_config.model) != "state":
        raise PipelineError(
            f"--config: model {train_config.model.name} sees camera frames; DAgger relabels "
            "state observations only (its rollouts store no frames): use a state model"
        )
    check_output_dir(out, "--out")
    if resume:
        if not (out / STATE_FILE).is_file():
            raise PipelineError(f"--resume: nothing to resume in {out} (no {STATE_FILE})")
    elif out.exists() and any(out.iterdir()):
        raise PipelineError(f"--out {out}: already exists; choose another --out or --resume")
    with open_training_data(init_data) as ds:
        recorded = ds.metadata.env_id
        steps = sum(info.total_steps for info in ds.episode_infos())
        pending = ds.pending_episodes
    if env_id is not None and env_id != recorded:
        raise PipelineError(f"--init-data {init_data}: recorded in {recorded}, not --env {env_id}")
    env_kwargs(recorded, episode_seconds=config.episode_seconds)
    if config.lead_seconds > 0 and config.episode_seconds is None:
        raise PipelineError(
            f"--lead-seconds {config.lead_seconds:g}: needs --episode-seconds (the labelled "
            "window after the lead)"
        )
    if pending:
        raise PipelineError(
            f"--init-data {init_data}: {pending} episode(s) still in its journal; finish the "
            "recording first (pipeline record --resume)"
        )
    if config.final_fits:
        chosen = range(config.selection_seed, config.selection_seed + config.selection_episodes)
        evaluated = range(config.eval_seed, config.eval_seed + config.eval_episodes)
        if max(chosen.start, evaluated.start) < min(chosen.stop, evaluated.stop):
            raise PipelineError(
                f"--selection-seed {config.selection_seed}: the selection seeds {chosen.start}-"
                f"{chosen.stop - 1} overlap the evaluation seeds {evaluated.start}-"
                f"{evaluated.stop - 1}; the evaluation must stay held out"
            )
    if config.max_labels is not None and config.max_labels < steps:
        raise PipelineError(
            f"--max-labels {config.max_labels}: below the {steps} expert-labelled steps "
            f"of --init-data"
        )
    return recorded, steps


def config_warnings(train_config: TrainConfig) -> list[str]:
    """Settings that run but are measured to hurt DAgger (docs/benchmarks/mirror.md)."""
    warnings = []
    if train_config.data.augment.mirror_prob > 0:
        warnings.append(
            "data.augment.mirror_prob > 0: mirroring assumes a mirror-symmetric expert and "
            "the shipped experts are not; with DAgger the walk policy collapsed to 0-1% "
            "survival (docs/benchmarks/mirror.md)"
        )
    return warnings


def dagger(
    init_data: Path,
    out: Path,
    config: DaggerConfig,
    train_config: TrainConfig,
    *,
    env_id: str | None = None,
    tracking_uri: str | None = None,
    resume: bool = False,
    on_iteration: Callable[[IterationRow], None] | None = None,
    on_candidate: Callable[[Candidate], None] | None = None,
) -> DaggerResult:
    """Run DAgger; see the module docstring. ``tracking_uri`` None runs without MLflow;
    otherwise a parent run holds one nested training run per iteration.

    After each iteration ``DIR/dagger_state.json`` records it. With ``resume`` (the same
    arguments) a run killed at any moment continues where it stopped: an interrupted
    rollout session is completed by the crash-safe writer, an interrupted fit resumes
    from its checkpoint, an interrupted evaluation runs again; the data and policies are
    those of an uninterrupted run.
    """
    start = time.perf_counter()
    env_id, _ = check_request(init_data, out, config, env_id, resume, train_config)
    request = _request(init_data, env_id, config, train_config)
    state = _load_state(out, request) if resume else {"request": request, "rows": []}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / STATE_FILE, state)  # from here on, a killed run can be resumed
    aggregate = out / AGGREGATE_FILE
    if not aggregate.exists():
        partial = out / (AGGREGATE_FILE + ".partial")
        shutil.copyfile(init_data, partial)
        partial.replace(aggregate)  # a kill during the copy leaves no half-copied data
    result = DaggerResult(out_dir=str(out), env_id=env_id)
    result.rows = [_row(r) for r in state["rows"]]
    name = run_name("dagger", env_id, f"seed{train_config.seed}")
    reopen = state.get("run_id") if tracking_uri else None
    with open_tracker(tracking_uri, train_config.tracking.experiment, name,
                      tags={"stage": "dagger", "env_id": env_id},
                      resume_run_id=reopen) as tracker:  # fmt: skip
        result.run_id = state["run_id"] = tracker.run_id
        if not result.rows:
            tracker.log_params({"dagger": config.model_dump(),
                                "train": config_to_dict(train_config)})  # fmt: skip
        write_json(out / STATE_FILE, state)
        baselines: dict[str, list[EpisodeResult]] = {}
        previous = Path(result.rows[-1].policy_dir) if result.rows else None
        longest = min(_longest_episode(aggregate), _rollout_step_limit(env_id, config))
        for iteration in range(len(result.rows), config.iterations + 1):
            episodes = config.episodes_per_iteration
            if result.rows:
                episodes = _episodes_within_budget(config, result.rows[-1].labels, longest)
                if episodes == 0:
                    break
            row = _iteration(iteration, aggregate, out, config, train_config, env_id,
                             previous, tracking_uri, baselines, episodes)  # fmt: skip
            result.rows.append(row)
            state["rows"].append(asdict(row))
            write_json(out / STATE_FILE, state)
            previous = Path(row.policy_dir)
            tracker.log_metrics(_metrics(row), step=iteration)
            if on_iteration:
                on_iteration(row)
        if not baselines:  # every iteration ran before a resume: score the last again
            assert previous is not None
            _evaluate(previous, config, baselines)
        result.expert, result.random = summarize(baselines[EXPERT]), summarize(baselines[RANDOM])
        assert previous is not None
        if config.final_fits:
            result.final = _choose_final(aggregate, out, env_id, config, train_config,
                                         result.rows[-1], state, tracking_uri, baselines,
                                         on_candidate)  # fmt: skip
            previous = Path(result.final.published().policy_dir)
            tracker.log_metrics(_final_metrics(result.final), step=len(result.rows))
        result.policy_dir = str(_publish(previous, out))
        _report_curve(result, out, tracker)
        _log_final_policy(Path(result.policy_dir), tracker)
        result.wall_s = time.perf_counter() - start
        write_json(out / DAGGER_FILE, {"command": "dagger", "config": config.model_dump(),
                                       "train_config": config_to_dict(train_config),
                                       **asdict(result)})  # fmt: skip
        tracker.log_artifact(out / DAGGER_FILE)
    return result


def _longest_episode(aggregate: Path) -> int:
    with open_dataset(aggregate) as ds:
        return max(info.total_steps for info in ds.episode_infos())


def _rollout_step_limit(env_id: str, config: DaggerConfig) -> int:
    """The most steps a mixture episode can take (``--episode-seconds`` or the env's
    limit): initial demonstrations longer than the rollouts must not shrink the budget's
    episode count."""
    return episode_step_limit(env_id, env_kwargs(env_id, episode_seconds=config.episode_seconds))


def _episodes_within_budget(config: DaggerConfig, labels: int, longest: int) -> int:
    """Episodes the next iteration records: all it asks for, or as many as cannot exceed
    ``max_labels`` even at ``longest`` steps each (the longest episode seen, or the
    rollouts' step limit where that is shorter)."""
    if config.max_labels is None:
        return config.episodes_per_iteration
    return min(config.episodes_per_iteration, max(config.max_labels - labels, 0) // longest)


def _request(
    init_data: Path, env_id: str, config: DaggerConfig, train_config: TrainConfig
) -> dict[str, Any]:
    """What a resume must repeat exactly."""
    return {
        "init_data": str(init_data.resolve()),
        "env_id": env_id,
        "config": config.model_dump(),
        "train_config": config_to_dict(train_config),
    }


def _load_state(out: Path, request: dict[str, Any]) -> dict[str, Any]:
    """The recorded state of the run in ``out``; one line if ``request`` differs from it."""
    state = json.loads((out / STATE_FILE).read_text())
    stored = state.get("request", {})
    for key in ("init_data", "env_id", "config", "train_config"):
        if stored.get(key) != request[key]:
            difference = first_difference(stored.get(key), request[key])
            raise PipelineError(
                f"--resume {out}: {key} differs from the run being resumed ({difference}); "
                "a run with other arguments is a new --out"
            )
    return state


def _row(data: dict[str, Any]) -> IterationRow:
    """A saved row; JSON stored NaN as null."""
    return IterationRow(**{k: math.nan if v is None else v for k, v in data.items()})


def _iteration(
    iteration: int, aggregate: Path, out: Path, config: DaggerConfig, train_config: TrainConfig,
    env_id: str, previous: Path | None, tracking_uri: str | None,
    baselines: dict[str, list[EpisodeResult]], episodes: int,
) -> IterationRow:  # fmt: skip
    tick = time.perf_counter()
    beta, added, costs = math.nan, 0, {}
    if iteration > 0:
        assert previous is not None
        beta = config.beta_at(iteration)
        added, costs = _roll_out(iteration, aggregate, config, env_id, beta, previous, episodes)
    rollout_s = time.perf_counter() - tick
    fit_config = train_config
    if previous is not None and not config.from_scratch:
        init = train_config.init.model_copy(update={"from_policy": str(previous)})
        fit_config = train_config.model_copy(update={"init": init})
    run_dir = out / f"iter-{iteration:02d}"
    resumable = (run_dir / CHECKPOINT_DIR).is_dir()
    if run_dir.exists() and not resumable:
        shutil.rmtree(run_dir)  # killed before its first checkpoint: nothing to keep
    fitted = train_from_file(
        aggregate, fit_config, run_dir, resume=resumable, tracking_uri=tracking_uri
    )
    fit_s = fitted.wall_s
    tick = time.perf_counter()
    policy_dir = run_dir / POLICY_DIR
    scores, learner = _evaluate(policy_dir, config, baselines)
    with open_dataset(aggregate) as ds:
        labels = sum(info.total_steps for info in ds.episode_infos())
    return IterationRow(
        iteration=iteration, beta=beta, episodes_added=added, labels=labels,
        survival=learner["survival_rate"],
        survival_on_expert_starts=scores["survival_on_expert_surviving_starts"],
        distance=mean_of(learner, "distance"), normalized_distance=scores["normalized_distance"],
        pose_reward=mean_of(learner, "pose_reward"), action_error=mean_of(learner, "action_error"),
        val_loss=fitted.best_val_loss, rollout_s=rollout_s, fit_s=fit_s,
        eval_s=time.perf_counter() - tick, policy_dir=str(policy_dir), **costs,
    )  # fmt: skip


def _roll_out(
    iteration: int, aggregate: Path, config: DaggerConfig, env_id: str, beta: float,
    learner: Path, episodes: int,
) -> tuple[int, dict[str, float]]:  # fmt: skip
    """Record the iteration's ``episodes`` mixture episodes into the aggregate (completing
    the session a kill interrupted); returns how many the session holds and the seconds
    spent simulating, relabelling and appending."""
    with open_dataset(aggregate) as ds:
        sessions = [s for s in ds.sessions if s.get("kind") in ("create", "append")]
        before = len(ds)
    args = sessions[-1].get("recording_args") or {}
    common = {"out": aggregate, "workers": config.workers, "backend": config.backend}
    if args.get("dagger_iteration") == iteration:  # started before a kill
        summary = record(RecordConfig(**common, mode="resume"))
        before = int(args["target_episodes"]) - episodes
    else:
        summary = record(RecordConfig(
            **common, env_id=env_id, episodes=episodes, seed=config.seed,
            episode_seconds=config.episode_seconds, lead_seconds=config.lead_seconds,
            lead_share=config.lead_share,
            compression=MIXTURE_COMPRESSION,
            keep_failed=True, mode="append", beta=beta, learner=str(learner.resolve()),
            provenance={"dagger_iteration": iteration},
        ))  # fmt: skip
    if summary.interrupted:  # Ctrl-C: the recording kept what it had; stop here too
        raise KeyboardInterrupt
    costs = {"sim_s": summary.rollout_s, "relabel_s": summary.relabel_s,
             "append_s": summary.write_s, "append_cpu_s": summary.write_cpu_s}  # fmt: skip
    return summary.total_episodes - before, costs


def _evaluate(
    policy_dir: Path, config: DaggerConfig, baselines: dict[str, list[EpisodeResult]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The policy on the evaluation seeds; the expert and random policy run the first time
    only, their episodes kept in ``baselines`` for the scores of later iterations."""
    request = EvaluateRequest(policy=str(policy_dir), episodes=config.eval_episodes,
                              seed=config.eval_seed, workers=config.workers,
                              backend=config.backend,
                              compare_expert=not baselines)  # fmt: skip
    report = run_evaluation(request, resolve_policy_source(str(policy_dir), None))
    if not baselines:
        baselines.update({EXPERT: report.results[EXPERT], RANDOM: report.results[RANDOM]})
    results = {LEARNER: report.results[LEARNER], **baselines}
    return expert_normalized_scores(results), report.summaries[LEARNER]


def _choose_final(
    aggregate: Path, out: Path, env_id: str, config: DaggerConfig, train_config: TrainConfig,
    last: IterationRow, state: dict[str, Any], tracking_uri: str | None,
    baselines: dict[str, list[EpisodeResult]], on_candidate: Callable[[Candidate], None] | None,
) -> FinalChoice:  # fmt: skip
    """The last iteration's policy and ``final_fits`` fits from scratch, judged on the
    selection seeds (each judged candidate recorded in the state file at once)."""
    recorded = state.setdefault("final", [])

    def record(candidate: Candidate) -> None:
        recorded.append(asdict(candidate))
        write_json(out / STATE_FILE, state)
        if on_candidate:
            on_candidate(candidate)

    choice = FitChoice(config.final_fits, config.final_fit_epochs, config.selection_episodes,
                       config.selection_seed, config.workers)  # fmt: skip
    given = {f"iteration {last.iteration}": Path(last.policy_dir)}
    best = select_among_fits(aggregate, env_id, given, train_config, choice, out,
                             [Candidate.from_dict(c) for c in recorded], record,
                             tracking_uri)  # fmt: skip
    candidates = [Candidate.from_dict(c) for c in recorded]
    if best.training_seed is None:  # the last iteration's policy: its row has the scores
        walked = (last.survival, last.survival_on_expert_starts, last.distance,
                  last.normalized_distance, last.pose_reward)  # fmt: skip
    else:
        scores, learner = _evaluate(Path(best.policy_dir), config, baselines)
        walked = (learner["survival_rate"], scores["survival_on_expert_surviving_starts"],
                  mean_of(learner, "distance"), scores["normalized_distance"],
                  mean_of(learner, "pose_reward"))  # fmt: skip
    return FinalChoice(candidates, best.name, *walked)


def _final_metrics(final: FinalChoice) -> dict[str, float]:
    chosen = final.published()
    return {
        "final/selection_survival": chosen.survival,
        "final/selection_normalized_distance": chosen.normalized_distance,
        "final/eval_survival": final.survival,
        "final/eval_survival_on_expert_starts": final.survival_on_expert_starts,
        "final/eval_normalized_distance": final.normalized_distance,
        "final/eval_pose_reward": final.pose_reward,
    }


def _metrics(row: IterationRow) -> dict[str, float]:
    return {
        "dagger/labels": float(row.labels),
        "dagger/beta": row.beta,
        "eval/survival": row.survival,
        "eval/survival_on_expert_starts": row.survival_on_expert_starts,
        "eval/normalized_distance": row.normalized_distance,
        "eval/pose_reward": row.pose_reward,
        "eval/action_error": row.action_error,
        "train/best_val_loss": row.val_loss,
    }


def _report_curve(result: DaggerResult, out: Path, tracker: Tracker) -> None:
    """``DIR/learning_curve.png``: survival and distance against expert labels."""
    from pipeline.reports.curve_plots import plot_label_curve

    rows = result.rows
    path = out / CURVE_FILE
    plot_label_curve([r.labels for r in rows], [r.survival for r in rows],
                     [r.normalized_distance for r in rows], path,
                     result.expert.get("survival_rate"))  # fmt: skip
    tracker.log_artifact(path, "plots")


def _log_final_policy(policy_dir: Path, tracker: Tracker) -> None:
    """The final policy as the DAgger run's MLflow model (``pipeline evaluate runs:/...``
    and the registry accept it); nothing without tracking."""
    if tracker.run_id is None:
        return

    from models import load_policy

    loaded = load_policy(policy_dir)
    spec = loaded.spec
    example = spec.example_inputs()
    tracker.log_keras_policy(loaded.model, example, policy_dir=policy_dir)


def _publish(policy_dir: Path, out: Path) -> Path:
    """The final policy as ``DIR/policy`` with its training run record beside it, so
    ``pipeline evaluate --policy DIR`` finds both."""
    final, partial = out / POLICY_DIR, out / (POLICY_DIR + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a kill during an earlier copy
    shutil.copytree(policy_dir, partial)
    shutil.rmtree(final, ignore_errors=True)  # the same policy, from a resumed run
    partial.replace(final)
    record_file = policy_dir.parent / TRAINING_RUN_FILE
    if record_file.exists():
        shutil.copyfile(record_file, out / TRAINING_RUN_FILE)
    return final
