"""``pipeline tune``: random search on the training config, coarse then fine, on Optuna.

Stage 1 draws ``trials`` configs from the space file's distributions (Optuna's
``RandomSampler``; log scale where the file says ``log_uniform``); stage 2 draws
``fine_trials`` more from ranges narrowed around the best quarter of stage 1
(:func:`pipeline.workflows.tune.space.narrow`). The k-th trial of a stage is drawn with a sampler
seeded from (seed, stage, k), so a trial re-run after a kill gets the same parameters.
Every trial is a ``pipeline train`` run in a fresh process (:mod:`pipeline.workflows.tune.trial`),
``workers`` at a time. The study lives in ``<out>/study.db`` (SQLite), so ``--resume``
continues it without repeating finished trials; a trial a kill interrupted is marked
failed and run again. MLflow gets a parent run for the study with every trial's training
run nested under it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.algorithms.train_config import recorded_env, resolve_train_config
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_dir
from pipeline.rollout.cluster import LOCAL, Backend
from pipeline.tracking.store import portable_uri
from pipeline.workflows.tune.executors import run_trials
from pipeline.workflows.tune.space import Param, load_space, narrow
from pipeline.workflows.tune.trial import OBJECTIVES, TrialResult, TrialTask, overrides_of

STUDY_FILE = "study.db"
BEST_CONFIG = "best_config.yaml"
RESULT_FILE = "tune.json"
STAGES = ("coarse", "fine")


@dataclass
class TuneRequest:
    """What ``pipeline tune`` searches, and how."""

    data: Path
    space: Path
    out: Path
    trials: int = 8
    fine_trials: int = 0
    objective: str = "val_loss"
    rollout_episodes: int = 10
    base_config: Path | None = None
    overrides: list[str] = field(default_factory=list)
    workers: int = 1
    study: str = "tune"
    resume: bool = False
    seed: int = 0
    tracking_uri: str | None = None
    experiment: str = "humanoid-imitation"
    backend: Backend = LOCAL
    env_id: str | None = None
    """The env ``data`` was recorded in (set by the request's check): its recipe is every
    trial's base without ``base_config``, as for ``pipeline train``."""


@dataclass
class TuneResult:
    """The study's trials, stages and best config."""

    study: str
    objective: str
    direction: str
    stages: dict[str, list[dict[str, Any]]]
    """Per stage, the searched ranges (``Param.to_dict`` per key)."""
    trials: list[dict[str, Any]]
    """Every finished trial, in trial-number order."""
    best: dict[str, Any]
    best_config: str
    run_id: str | None = None
    plots: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_tune_request(request: TuneRequest) -> list[Param]:
    """Every option, before any trial runs; returns the coarse space."""
    if request.trials < 1:
        raise PipelineError(f"--trials: must be >= 1, got {request.trials}")
    if request.fine_trials < 0:
        raise PipelineError(f"--fine-trials: must be >= 0, got {request.fine_trials}")
    if request.objective not in OBJECTIVES:
        raise PipelineError(f"--objective: '{request.objective}' is not one of "
                            f"{', '.join(OBJECTIVES)}")  # fmt: skip
    if request.objective == "closed_loop" and request.rollout_episodes < 1:
        raise PipelineError(f"--rollout-episodes: the closed-loop objective needs >= 1, got "
                            f"{request.rollout_episodes}")  # fmt: skip
    if request.workers < 1:
        raise PipelineError(f"--workers: must be >= 1, got {request.workers}")
    if not request.data.is_file():
        raise PipelineError(f"--data {request.data}: file not found")
    request.env_id = recorded_env(request.data)
    space = load_space(request.space, request.base_config, request.overrides, request.env_id)
    check_output_dir(request.out, "--out")
    study_file = request.out / STUDY_FILE
    if request.resume:
        if not study_file.is_file():
            raise PipelineError(f"--resume: no study to resume in {request.out} (no {STUDY_FILE})")
    elif request.out.exists() and any(request.out.iterdir()):
        raise PipelineError(f"--out {request.out}: already exists; choose another --out or "
                            f"use --resume")  # fmt: skip
    return space


def _defining(request: TuneRequest, space: list[Param]) -> dict[str, Any]:
    """What a resumed study must agree with."""
    return {"space": {p.key: p.to_dict() for p in space}, "objective": request.objective,
            "data": str(request.data.resolve()), "seed": request.seed,
            "base_config": str(request.base_config) if request.base_config else None,
            "overrides": list(request.overrides),
            "rollout_episodes": request.rollout_episodes}  # fmt: skip


def _open_study(request: TuneRequest, space: list[Param]) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(request.out / STUDY_FILE).resolve()}"
    direction = "minimize" if request.objective == "val_loss" else "maximize"
    defining = _defining(request, space)
    if request.resume:
        try:
            study = optuna.load_study(study_name=request.study, storage=storage)
        except KeyError:
            raise PipelineError(f"--resume: {request.out / STUDY_FILE} holds no study named "
                                f"'{request.study}'") from None  # fmt: skip
        saved = study.user_attrs.get("defining", {})
        for key, value in defining.items():
            if saved.get(key) != value:
                raise PipelineError(f"--resume: the study was started with another {key} "
                                    f"({saved.get(key)!r}, now {value!r})")  # fmt: skip
        return study
    request.out.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=request.study, storage=storage, direction=direction)
    study.set_user_attr("defining", defining)
    return study


def _finished(study: Any, stage: str) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE and t.user_attrs.get("stage") == stage]  # fmt: skip


def _fail_interrupted(study: Any) -> None:
    """Trials a kill left running are failed (their stage slot is run again)."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)


def _ask(study: Any, space: list[Param], coarse: list[Param], seed: int, stage: str,
         index: int) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """A new trial and its parameters (config values), drawn from seed, stage and index.

    Optuna keeps one categorical distribution per key for the whole study, so a choice is
    drawn here from the stage's (possibly narrowed) values and fixed in the trial, over the
    coarse stage's full set of choices; numeric ranges may change between stages."""
    import numpy as np
    import optuna

    # Hashed: nearby integer seeds give visibly correlated first draws in the sampler.
    stage_seed = int(np.random.SeedSequence([seed, STAGES.index(stage), index])
                     .generate_state(1)[0] % 2**31)  # fmt: skip
    study.sampler = optuna.samplers.RandomSampler(seed=stage_seed)
    rng = np.random.default_rng(stage_seed)
    full = {p.key: p for p in coarse}
    fixed = {p.key: p.encode(p.choices[int(rng.integers(len(p.choices)))])
             for p in space if p.kind == "choice"}  # fmt: skip
    if fixed:
        study.enqueue_trial(fixed, skip_if_exists=False)
    trial = study.ask({p.key: (full[p.key] if p.kind == "choice" else p).distribution()
                       for p in space})  # fmt: skip
    trial.set_user_attr("stage", stage)
    trial.set_user_attr("index", index)
    params = {p.key: p.decode(trial.params[p.key]) for p in space}
    trial.set_user_attr("config_params", params)
    return trial, params


def _run_stage(study: Any, request: TuneRequest, space: list[Param], coarse: list[Param],
               stage: str, count: int, parent_run_id: str | None, tracker: Any,
               on_trial: Callable[[TrialResult], None] | None) -> None:  # fmt: skip
    from optuna.trial import TrialState

    done = {t.user_attrs.get("index") for t in _finished(study, stage)}
    todo = [k for k in range(count) if k not in done]
    if not todo:
        return
    asked = {k: _ask(study, space, coarse, request.seed, stage, k) for k in todo}
    trials = {k: trial for k, (trial, _) in asked.items()}
    tasks = [TrialTask(number=trial.number, stage=stage, params=params,
                       data=str(request.data.resolve()),
                       base_config=str(request.base_config) if request.base_config else None,
                       base_overrides=tuple(request.overrides), env_id=request.env_id,
                       out=str((request.out / "trials" / f"trial-{trial.number:03d}").resolve()),
                       objective=request.objective, rollout_episodes=request.rollout_episodes,
                       tracking_uri=portable_uri(request.tracking_uri) if request.tracking_uri
                       else None, parent_run_id=parent_run_id,
                       threads=max(1, 2 // request.workers))
             for trial, params in asked.values()]  # fmt: skip
    for task, result in run_trials(tasks, request.workers, request.backend):
        if isinstance(result, BaseException):
            study.tell(task.number, state=TrialState.FAIL)
            study.set_user_attr(f"error_{task.number}", f"{type(result).__name__}: {result}"[:500])
            continue
        trial = next(t for t in trials.values() if t.number == task.number)
        for key, value in (("val_loss", result.val_loss), ("train_s", result.train_s),
                           ("eval_s", result.eval_s), ("run_id", result.run_id),
                           ("closed_loop", result.closed_loop)):  # fmt: skip
            trial.set_user_attr(key, value)
        study.tell(task.number, result.value)
        tracker.log_metrics({"trial/objective": result.value,
                             "trial/val_loss": result.val_loss}, step=task.number)  # fmt: skip
        if on_trial is not None:
            on_trial(result)


def _trial_rows(study: Any) -> list[dict[str, Any]]:
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rows.append({"number": t.number, "stage": t.user_attrs.get("stage"),
                     "params": t.user_attrs.get("config_params", dict(t.params)),
                     "value": t.value,
                     **{k: t.user_attrs.get(k) for k in ("val_loss", "train_s", "eval_s",
                                                          "run_id", "closed_loop")}})  # fmt: skip
    return rows


def run_tune(request: TuneRequest,
             on_trial: Callable[[TrialResult], None] | None = None) -> TuneResult:  # fmt: skip
    """Run (or resume) the study; see the module docstring."""
    from pipeline.reports.tune_plots import plot_objective_vs_params
    from pipeline.tracking import open_tracker
    from pipeline.training.config import save_config

    coarse = check_tune_request(request)
    study = _open_study(request, coarse)
    _fail_interrupted(study)
    maximize = request.objective == "closed_loop"
    with open_tracker(request.tracking_uri, request.experiment, f"tune {request.study}",
                      tags={"stage": "tune"},
                      resume_run_id=study.user_attrs.get("run_id")) as tracker:  # fmt: skip
        if tracker.run_id and not study.user_attrs.get("run_id"):
            study.set_user_attr("run_id", tracker.run_id)
            tracker.log_params({"trials": request.trials, "fine_trials": request.fine_trials,
                                "objective": request.objective, "workers": request.workers,
                                **{f"space.{p.key}": p.describe() for p in coarse}})  # fmt: skip
        _run_stage(study, request, coarse, coarse, "coarse", request.trials, tracker.run_id,
                   tracker, on_trial)  # fmt: skip
        stages = {"coarse": [{p.key: p.to_dict()} for p in coarse]}
        if request.fine_trials:
            fine = _fine_space(study, coarse, maximize)
            stages["fine"] = [{p.key: p.to_dict()} for p in fine]
            _run_stage(study, request, fine, coarse, "fine", request.fine_trials,
                       tracker.run_id, tracker, on_trial)  # fmt: skip
        rows = _trial_rows(study)
        if not rows:
            raise PipelineError(f"tune: no trial finished ({_first_error(study)})")
        pick = max if maximize else min
        best = pick(rows, key=lambda r: r["value"])
        config = resolve_train_config(request.base_config,
                                      [*request.overrides, *overrides_of(best["params"])],
                                      env_id=request.env_id)  # fmt: skip
        save_config(config, request.out / BEST_CONFIG)
        log_keys = frozenset(p.key for p in coarse if p.log)
        plots = plot_objective_vs_params(rows, [p.key for p in coarse], request.objective,
                                         request.out / "plots", log_keys)  # fmt: skip
        result = TuneResult(study=request.study, objective=request.objective,
                            direction="maximize" if maximize else "minimize", stages=stages,
                            trials=rows, best=best, best_config=str(request.out / BEST_CONFIG),
                            run_id=tracker.run_id, plots=[str(p) for p in plots])  # fmt: skip
        (request.out / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=2,
                                                          default=str) + "\n")  # fmt: skip
        tracker.log_metrics({"best/objective": best["value"]}, step=len(rows))
        for path in (request.out / BEST_CONFIG, request.out / RESULT_FILE, *plots):
            tracker.log_artifact(path)
    return result


def _fine_space(study: Any, coarse: list[Param], maximize: bool) -> list[Param]:
    """Narrowed once, from the finished coarse trials, and kept for a resume."""
    saved = study.user_attrs.get("fine_space")
    if saved is not None:
        from pipeline.workflows.tune.space import parse_param

        return [parse_param(key, spec, "study") for key, spec in saved.items()]
    finished = [(t.user_attrs["config_params"], t.value) for t in _finished(study, "coarse")]
    fine = narrow(coarse, finished, maximize)
    study.set_user_attr("fine_space", {p.key: p.to_dict() for p in fine})
    return fine


def _first_error(study: Any) -> str:
    errors = [v for k, v in study.user_attrs.items() if k.startswith("error_")]
    return errors[0] if errors else "none ran"
