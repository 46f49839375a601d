"""``pipeline report RUN``: one self-contained HTML page for a training run, an evaluation, a
DAgger run, a fine-tuning run or a quickstart.

What the folder holds decides what the page shows (``quickstart.json``, ``dagger.json``,
``finetune.json``, ``evaluation.json`` or ``training_run.json``; a folder of quickstart runs
reports the newest):

- results against the expert and a random policy on the same seeds (the evaluation's table,
  expert-normalized scores, survival on the starts the expert survives, its warnings),
- survival and distance by the gait phase each episode started from,
- the videos (learner, learner beside the expert, its first fall),
- learning curves (training loss, DAgger's survival against expert labels), the training
  summary of the published policy, DAgger's iterations and its final choice among fits,
  fine-tuning's selections beside the expert and its per-update metrics
  (:mod:`pipeline.workflows.finetune_report`),
- the joint-trajectory, action-error and per-episode plots,
- the config, the demonstration file's summary, and the commands that reproduce the run.

Pictures and videos are embedded, so the file opens offline and alone; it is logged to the
run's MLflow run as an artifact (``reports/report.html``) when that run is in the store.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.policy_files import SPEC_FILE
from pipeline.algorithms.dagger import AGGREGATE_FILE, DAGGER_FILE
from pipeline.algorithms.finetune import FINETUNE_FILE
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_path, read_json_object
from pipeline.core.run_files import CONFIG_FILE, POLICY_DIR, TRAINING_RUN_FILE
from pipeline.reports.html_page import (
    Section,
    cell,
    page,
    paragraph,
    percent,
    picture,
    preformatted,
    table,
    video,
)
from pipeline.stages.evaluate import EVALUATION_FILE
from pipeline.workflows import finetune_report
from pipeline.workflows.quickstart import QUICKSTART_FILE

if TYPE_CHECKING:
    from pipeline.algorithms.fit_selection import FinalChoice

PAGE_FILE = "report.html"
"""The page, in the run folder unless ``--out`` says otherwise."""
QUICKSTART, DAGGER, EVALUATION, TRAINING = "quickstart", "dagger", "evaluation", "training"
FINETUNE = "finetune"
MARKERS = {QUICKSTART: QUICKSTART_FILE, DAGGER: DAGGER_FILE, FINETUNE: FINETUNE_FILE,
           EVALUATION: EVALUATION_FILE, TRAINING: TRAINING_RUN_FILE}  # fmt: skip
"""The file that makes a folder a run of each kind (each named by the module that writes
it), in the order they are looked for."""
ARTIFACT_DIR = "reports"


@dataclass(frozen=True)
class ReportRequest:
    """What ``pipeline report`` was asked."""

    run: Path
    """A run folder (or a folder of quickstart runs: the newest is reported)."""
    out: Path | None = None
    """The HTML file (default: ``RUN/report.html``)."""
    overwrite: bool = False


@dataclass
class RunParts:
    """What a run folder holds that the page shows."""

    kind: str
    run: Path
    training: Path | None = None
    """The training run directory (config.yaml, plots/, checkpoint/state.json)."""
    training_record: dict[str, Any] = field(default_factory=dict)
    """Its ``training_run.json``."""
    training_spec: dict[str, Any] = field(default_factory=dict)
    """Its policy's ``spec.json`` (env, where the statistics came from)."""
    evaluation: Any = None
    """The ``EvaluateReport`` read back from evaluation.json."""
    evaluation_dir: Path | None = None
    dagger: dict[str, Any] | None = None
    final: FinalChoice | None = None
    """DAgger's final choice among fits (``--final-fits``), when it made one."""
    finetune: finetune_report.FinetuneRun | None = None
    """A fine-tuning run's record and arguments."""
    data: Path | None = None
    """The demonstration file the policy learned from."""
    commands: list[str] = field(default_factory=list)


@dataclass
class ReportResult:
    """What ``pipeline report`` wrote."""

    path: Path
    kind: str
    run: Path
    size_bytes: int
    seconds: float
    sections: list[str]
    logged_run: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"command": "report", "path": str(self.path), "kind": self.kind,
                "run": str(self.run), "size_bytes": self.size_bytes, "seconds": self.seconds,
                "sections": self.sections, "logged_run": self.logged_run}  # fmt: skip


def find_run(path: Path) -> tuple[str, Path]:
    """The kind of run ``path`` is and its folder; one line naming RUN for anything else."""
    if not path.is_dir():
        raise PipelineError(f"RUN {path}: no such folder")
    for kind, marker in MARKERS.items():
        if (path / marker).is_file():
            return kind, path
    runs = sorted(p for p in path.iterdir() if (p / MARKERS[QUICKSTART]).is_file())
    if runs:
        return QUICKSTART, runs[-1]  # quickstart folders are named by UTC time
    names = ", ".join(MARKERS.values())
    raise PipelineError(f"RUN {path}: not a run folder (it holds none of {names})")


def check_request(request: ReportRequest) -> tuple[str, Path, Path]:
    """(kind, run folder, output file), before anything is read or written."""
    kind, run = find_run(request.run)
    out = request.out if request.out is not None else run / PAGE_FILE
    check_output_path(out, "--out", (".html",), overwrite=request.overwrite)
    return kind, run, out


def build_report(request: ReportRequest, tracking_uri: str | None = None) -> ReportResult:
    """Write the page (module docstring); ``tracking_uri`` None: do not log it to MLflow."""
    start = time.perf_counter()
    kind, run, out = check_request(request)
    parts = gather(kind, run)
    sections = _sections(parts)
    title = f"{kind.capitalize()} report: {run.name}"
    env = parts.evaluation.env_id if parts.evaluation is not None else _env_of(parts)
    subtitle = f"{run.resolve()} · {env or 'unknown env'} · {time.strftime('%Y-%m-%d %H:%M')}"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page(title, subtitle, sections, holdings(parts)), encoding="utf-8")
    tmp.replace(out)
    logged = _log(out, parts, tracking_uri) if tracking_uri is not None else None
    return ReportResult(out, kind, run, out.stat().st_size, time.perf_counter() - start,
                        [s.title for s in sections], logged)  # fmt: skip


# -- what a run holds ------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path, "RUN")


def _evaluation(path: Path) -> Any:
    from pipeline.stages.evaluate import EvaluateReport

    try:
        return EvaluateReport.from_dict(_read_json(path))
    except (KeyError, TypeError, ValueError) as exc:
        raise PipelineError(f"RUN {path}: not an evaluation of this pipeline ({exc})") from None


def _training_dir_of(policy: str) -> Path | None:
    """The training run directory of a local policy path (the run, or the policy in it)."""
    path = Path(policy)
    for candidate in (path, path.parent):
        if (candidate / TRAINING_RUN_FILE).is_file() and (candidate / CONFIG_FILE).is_file():
            return candidate
    return None


def _policy_spec(training: Path) -> dict[str, Any]:
    try:
        spec = json.loads((training / POLICY_DIR / SPEC_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return spec if isinstance(spec, dict) else {}


def gather(kind: str, run: Path) -> RunParts:
    """Find the parts of a run of ``kind`` in ``run``."""
    parts = RunParts(kind, run)
    if kind == QUICKSTART:
        parts.training = run / "train"
        parts.evaluation_dir = run / "evaluation"
        parts.data = run / "walk-demos.h5"
    elif kind == EVALUATION:
        parts.evaluation_dir = run
    elif kind == TRAINING:
        parts.training = run
        if (run / "evaluation" / MARKERS[EVALUATION]).is_file():
            parts.evaluation_dir = run / "evaluation"
    elif kind == FINETUNE:
        parts.finetune = finetune_report.read_finetune_run(run)
        parts.data = parts.finetune.anchor_data()
        if (run / "evaluation" / MARKERS[EVALUATION]).is_file():  # the hint's evaluation
            parts.evaluation_dir = run / "evaluation"
    else:
        parts.dagger = _read_json(run / MARKERS[DAGGER])
        parts.final = _final_choice(run / MARKERS[DAGGER], parts.dagger)
        parts.training = _published_training(parts.dagger, parts.final)
        aggregate = run / AGGREGATE_FILE
        parts.data = aggregate if aggregate.is_file() else None
        if (run / "evaluation" / MARKERS[EVALUATION]).is_file():  # the hint's evaluation
            parts.evaluation_dir = run / "evaluation"
    if parts.evaluation_dir is not None and (parts.evaluation_dir / MARKERS[EVALUATION]).is_file():
        parts.evaluation = _evaluation(parts.evaluation_dir / MARKERS[EVALUATION])
        if parts.training is None:
            parts.training = _training_dir_of(parts.evaluation.policy)
    if parts.training is not None and not (parts.training / CONFIG_FILE).is_file():
        parts.training = None
    if parts.training is not None:
        parts.training_record = _read_json(parts.training / TRAINING_RUN_FILE)
        parts.training_spec = _policy_spec(parts.training)
    if not (parts.data and parts.data.is_file()):
        source = Path(str(parts.training_spec.get("stats_source", "")))
        parts.data = source if source.is_file() else None
    parts.commands = _commands(parts)
    return parts


def _env_of(parts: RunParts) -> str | None:
    if parts.dagger is not None:
        return parts.dagger.get("env_id")
    if parts.finetune is not None:
        return parts.finetune.record.get("env_id")
    return parts.training_spec.get("env_id")


# -- commands that reproduce it --------------------------------------------------------------


def _record_command(data: Path) -> str | None:
    from datasets import DatasetError, open_dataset

    try:
        with open_dataset(data) as ds:
            args = ds.metadata.recording_args or {}
    except DatasetError:
        return None
    if not args.get("env_id") or args.get("learner"):
        return None
    command = (f"pipeline record --env {args['env_id']} --episodes {args['target_episodes']} "
               f"--seed {args['seed']} --noise {args['noise']:g}")  # fmt: skip
    if args.get("camera"):
        command += f" --camera {args['camera']} --camera-view {args['camera_view']}"
    for option in ("start_phase", "episode_seconds"):
        if args.get(option) is not None:
            command += f" --{option.replace('_', '-')} {args[option]}"
    return f"{command} --out {data}"


def _commands(parts: RunParts) -> list[str]:
    commands = []
    if parts.kind == QUICKSTART:
        commands.append(f"pipeline quickstart --out {parts.run.parent}   # all three steps:")
    if parts.data is not None and parts.kind != DAGGER:
        record = _record_command(parts.data)
        if record:
            commands.append(record)
    if parts.training is not None and parts.kind != DAGGER and parts.data is not None:
        commands.append(f"pipeline train --data {parts.data} --config "
                        f"{parts.training / CONFIG_FILE} --out {parts.training}-again")  # fmt: skip
    if parts.dagger is not None:
        commands.append(_dagger_command(parts))
    if parts.finetune is not None:
        commands.append(finetune_report.command(parts.finetune))
    report = parts.evaluation
    if report is not None:
        command = (f"pipeline evaluate --policy {report.policy} --episodes {len(report.seeds)} "
                   f"--seed {report.seeds[0]}")  # fmt: skip
        if len(report.results) > 1:
            command += " --compare-expert"
        if report.env_kwargs.get("push"):
            command += "   # with the same --push"
        commands.append(command)
    return commands


def _dagger_command(parts: RunParts) -> str:
    dagger = parts.dagger or {}
    config = dagger.get("config", {})
    options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in config.items()
                       if v is not None and not isinstance(v, bool | dict | list))  # fmt: skip
    flags = " ".join(f"--{k.replace('_', '-')}" for k, v in config.items() if v is True)
    state = parts.run / "dagger_state.json"
    request = _read_json(state).get("request", {}) if state.is_file() else {}
    init = request.get("init_data", "INITIAL_DEMOS.h5")
    first = parts.run / "iter-00" / CONFIG_FILE
    train_config = f" --config {first}" if first.is_file() else ""
    return (
        f"pipeline dagger --env {dagger.get('env_id')} --init-data {init}{train_config} "
        f"--out {parts.run}-again {options} {flags}"
    ).rstrip()


# -- what the run holds ------------------------------------------------------------------------


def holdings(parts: RunParts) -> str:
    """The page's opening sentence: what the run holds (which evaluations, of which
    policies, on how many episodes), so that no reader looks for what is not there."""
    report = parts.evaluation
    evaluated = ""
    if report is not None:
        *others, last = list(report.summaries)
        names = f"{', '.join(others)} and {last}" if others else last
        evaluated = (f"an evaluation of {names} on the same {len(report.seeds)} episodes "
                     f"(seeds {report.seeds[0]}-{report.seeds[-1]})")  # fmt: skip
    if parts.kind == DAGGER:
        return _dagger_holdings(parts, evaluated)
    if parts.finetune is not None:
        return finetune_report.holdings(parts.finetune, evaluated)
    if parts.kind == EVALUATION:
        return f"This evaluation holds {evaluated}."
    what = {QUICKSTART: "This quickstart run holds its demonstrations, its training run",
            TRAINING: "This training run holds its training record and learning curves"}[
        parts.kind]  # fmt: skip
    if not evaluated:
        return f"{what}; it holds no closed-loop evaluation."
    return f"{what} and {evaluated}."


def _dagger_holdings(parts: RunParts, evaluated: str) -> str:
    dagger = parts.dagger or {}
    rows = dagger.get("rows") or []
    config = dagger.get("config") or {}
    episodes, seed = config.get("eval_episodes"), config.get("eval_seed")
    seeds = f" (seeds {seed}-{seed + episodes - 1})" if isinstance(seed, int) and episodes else ""
    text = (f"This DAgger run holds the closed-loop evaluation of each of its {len(rows)} "
            f"iterations' policies on {episodes} held-out episodes{seeds}, beside the expert "
            "and a random policy on the same episodes")  # fmt: skip
    published, _ = _published(parts)
    if published is not None:
        text += f", and that of the final policy it published, {published}"
        if parts.final is not None:
            text += (f" (chosen among {len(parts.final.candidates)} candidates on "
                     f"{config.get('selection_episodes')} selection episodes)")  # fmt: skip
    if evaluated:
        text += f"; its evaluation/ folder holds {evaluated}"
    return text + "."


def _published(parts: RunParts) -> tuple[str | None, dict[str, Any]]:
    """DAgger's published policy (its name on the page) and how it walked on the evaluation
    episodes (survival, survival_on_expert_starts, distance, normalized_distance,
    pose_reward): the chosen final fit's scores, else the last iteration's row."""
    if parts.final is not None:
        final = parts.final
        scores = {"survival": final.survival,
                  "survival_on_expert_starts": final.survival_on_expert_starts,
                  "distance": final.distance, "normalized_distance": final.normalized_distance,
                  "pose_reward": final.pose_reward}  # fmt: skip
        return final.chosen, scores
    rows = (parts.dagger or {}).get("rows") or []
    if not rows:
        return None, {}
    return f"iteration {rows[-1].get('iteration')}", rows[-1]


# -- the page ---------------------------------------------------------------------------------


def _sections(parts: RunParts) -> list[Section]:
    builders = (_finetune, _results, _phases, _videos, _curves, _dagger_rows, _dagger_final, _plots,
                _config, _dataset, _reproduce)  # fmt: skip
    return [section for build in builders for section in build(parts)]


def _finetune(parts: RunParts) -> list[Section]:
    if parts.finetune is None:
        return []
    return finetune_report.sections(parts.finetune, parts.evaluation is not None)


def _results(parts: RunParts) -> list[Section]:
    from pipeline.stages.evaluate.tables import metric_rows, summary_lines

    report = parts.evaluation
    if report is None and parts.dagger is not None:
        return _dagger_results(parts)
    if report is None and parts.finetune is not None:
        return []  # its selections are its closed-loop results; their note says how to get more
    if report is None:
        hint = (
            "This run holds no closed-loop evaluation. Run pipeline evaluate --policy "
            f"{parts.run} --compare-expert --out {parts.run / 'evaluation'} and report again."
        )
        return [Section("Results", paragraph(hint, note=True))]
    caption, rows = metric_rows(report)
    body = table(["metric", *report.summaries], [[label, *cells] for label, cells in rows],
                 caption)  # fmt: skip
    body += "".join(paragraph(line) for line in summary_lines(report))
    body += "".join(paragraph(f"Warning: {w}", note=True) for w in report.warnings)
    return [Section("Results against the expert and a random policy", body)]


def _dagger_results(parts: RunParts) -> list[Section]:
    """A DAgger run's final policy beside the expert and a random policy, from the
    evaluation DAgger ran (its ``dagger.json``)."""
    dagger = parts.dagger or {}
    published, scores = _published(parts)
    if published is None:
        return []
    expert, random = dagger.get("expert") or {}, dagger.get("random") or {}

    def mean(summary: dict[str, Any], key: str) -> Any:
        value = summary.get(key)
        return value.get("mean") if isinstance(value, dict) else None

    rows = [
        ["survival", percent(scores.get("survival")),
         percent(expert.get("survival_rate")), percent(random.get("survival_rate"))],
        ["survival on the expert's surviving starts",
         percent(scores.get("survival_on_expert_starts")), "-", "-"],
        ["distance m", cell(scores.get("distance")), cell(mean(expert, "distance")),
         cell(mean(random, "distance"))],
        ["norm. distance (0 = random, 1 = expert)", cell(scores.get("normalized_distance")),
         "-", "-"],
        ["pose reward", cell(scores.get("pose_reward")), cell(mean(expert, "pose_reward")),
         cell(mean(random, "pose_reward"))],
    ]  # fmt: skip
    config = dagger.get("config") or {}
    caption = (f"the final policy ({published}) on the {config.get('eval_episodes')} "
               "held-out evaluation episodes of every iteration")  # fmt: skip
    body = table(["metric", f"final policy ({published})", "expert", "random"], rows, caption)
    body += paragraph(
        f"For videos, per-episode plots and survival by start phase: pipeline evaluate --policy "
        f"{parts.run} --compare-expert --out {parts.run / 'evaluation'}, then report again.",
        note=True,
    )
    return [Section("Results against the expert and a random policy", body)]


def _phases(parts: RunParts) -> list[Section]:
    from pipeline.reports.phase_breakdown import has_phases, phase_rows, plot_phase_survival

    report = parts.evaluation
    if report is None or not has_phases(report.results):
        return []
    columns, rows = phase_rows(report.results)
    with tempfile.TemporaryDirectory(prefix="report-") as tmp:
        png = Path(tmp) / "phases.png"
        plot_phase_survival(report.results, png)
        figure = picture(png, "survival rate per start-phase bin (same seeds for every policy)")
    body = table(columns, rows, "episodes by the gait phase they started from") + figure
    return [Section("By start phase of the gait", body)]


def _video_path(path: str, parts: RunParts) -> Path | None:
    candidate = Path(path)
    for option in (candidate, parts.run / candidate.name):
        if option.is_file():
            return option
    return None


def _videos(parts: RunParts) -> list[Section]:
    if parts.evaluation is None:
        return []
    shown = []
    for filmed in parts.evaluation.filmed:
        path = _video_path(filmed.path, parts)
        if path is not None:
            shown.append(video(path, f"{path.name}: seed {filmed.seed}, {filmed.what}"))
    return [Section("Videos", "".join(shown))] if shown else []


def _training_summary(training: Path, record: dict[str, Any]) -> str:
    state_file = training / "checkpoint" / "state.json"
    rows = [["best validation loss", f"{record.get('best_val_loss', float('nan')):.4g}"],
            ["best epoch", str(record.get("best_epoch"))]]  # fmt: skip
    if state_file.is_file():
        state = _read_json(state_file)
        rows.append(["epochs trained", str(state.get("epochs_done"))])
        rows.append(["stopped early", str(state.get("stopped_early"))])
    selection = record.get("selection")
    if isinstance(selection, dict):
        for key, value in selection.items():
            if isinstance(value, int | float | str):
                rows.append([f"closed-loop selection: {key}", str(value)])
    return table(["training", "value"], rows)


def _curves(parts: RunParts) -> list[Section]:
    body = ""
    if parts.dagger is not None and (parts.run / "learning_curve.png").is_file():
        body += picture(
            parts.run / "learning_curve.png",
            "DAgger: survival and distance against expert-labelled steps",
        )
    if parts.finetune is not None:
        body += finetune_report.curves(parts.finetune)
    if parts.training is not None:
        body += _training_summary(parts.training, parts.training_record)
        for png in sorted((parts.training / "plots").glob("*.png")):
            body += picture(png, f"training: {png.stem.replace('_', ' ')}")
    return [Section("Learning curves", body)] if body else []


def _dagger_rows(parts: RunParts) -> list[Section]:
    if parts.dagger is None:
        return []
    columns = ("iteration", "beta", "labels", "survival", "on expert starts", "distance m",
               "norm. distance", "action error", "val loss")  # fmt: skip
    keys = ("iteration", "beta", "labels", "survival", "survival_on_expert_starts", "distance",
            "normalized_distance", "action_error", "val_loss")  # fmt: skip
    shares = {"survival", "survival_on_expert_starts"}
    rows = [[(percent if k in shares else cell)(row.get(k)) for k in keys]
            for row in parts.dagger.get("rows", [])]  # fmt: skip
    body = table(columns, rows, "one row per iteration (held-out evaluation seeds)")
    expert = parts.dagger.get("expert") or {}
    if "survival_rate" in expert:
        body += paragraph(f"expert on the same seeds: survival {percent(expert['survival_rate'])}")
    return [Section("DAgger iterations", body)]


def _dagger_final(parts: RunParts) -> list[Section]:
    final = parts.final
    if final is None:
        return []
    episodes = (parts.dagger or {}).get("config", {}).get("selection_episodes")
    columns, rows, caption = final.table()
    body = table(columns, rows, f"each candidate on {episodes} selection episodes, seeds apart "
                                "from the evaluation's")  # fmt: skip
    body += paragraph(caption)
    return [Section(f"DAgger's final policy: the best of {len(final.candidates)}", body)]


def _final_choice(path: Path, dagger: dict[str, Any]) -> FinalChoice | None:
    """DAgger's final choice among fits, or None without one."""
    from pipeline.algorithms.fit_selection import FinalChoice

    saved = dagger.get("final")
    if not saved:
        return None
    try:
        final = FinalChoice.from_dict(saved)
        final.published()
    except (AttributeError, KeyError, StopIteration, TypeError) as exc:
        raise PipelineError(f"RUN {path}: 'final' is not a final choice of pipeline dagger "
                            f"({type(exc).__name__}: {exc})") from None  # fmt: skip
    return final


def _published_training(dagger: dict[str, Any], final: FinalChoice | None) -> Path | None:
    """The training run of the policy DAgger published: the chosen final fit's, else the
    last iteration's."""
    if final is not None:
        return Path(final.published().policy_dir).parent
    rows = dagger.get("rows") or []
    return Path(rows[-1]["policy_dir"]).parent if rows else None


def _plots(parts: RunParts) -> list[Section]:
    if parts.evaluation_dir is None:
        return []
    names = {"trajectories": "joint commands of learner and expert on the shown seed",
             "action_error": "on-policy action error against the expert, by second",
             "episodes": "every episode: survival time and distance"}  # fmt: skip
    pngs = sorted((parts.evaluation_dir / "plots").glob("*.png"))
    body = "".join(picture(p, names.get(p.stem, p.stem.replace("_", " "))) for p in pngs)
    return [Section("Trajectories and action error", body)] if body else []


def _config(parts: RunParts) -> list[Section]:
    body = ""
    if parts.dagger is not None:
        body += preformatted(json.dumps(parts.dagger.get("config", {}), indent=2))
    if parts.finetune is not None:
        body += preformatted(json.dumps(parts.finetune.config, indent=2))
    if parts.training is not None:
        body += preformatted((parts.training / CONFIG_FILE).read_text())
    return [Section("Config", body)] if body else []


def _dataset(parts: RunParts) -> list[Section]:
    if parts.data is None:
        return []
    from datasets import DatasetError, open_dataset
    from pipeline.reports.dataset_summary import dataset_rows

    try:
        with open_dataset(parts.data) as ds:
            rows = dataset_rows(ds.summary().to_dict(), len(ds.dropped_attempts))
    except DatasetError as exc:
        return [Section("Demonstrations", paragraph(f"{parts.data}: {exc}", note=True))]
    return [Section("Demonstrations", table(["", "value"], rows, str(parts.data)))]


def _reproduce(parts: RunParts) -> list[Section]:
    if not parts.commands:
        return []
    return [Section("Commands that reproduce it", preformatted("\n".join(parts.commands)))]


# -- MLflow ----------------------------------------------------------------------------------


def _run_to_log(parts: RunParts) -> str | None:
    if parts.evaluation is not None and parts.evaluation.eval_run_id:
        return parts.evaluation.eval_run_id
    if parts.dagger is not None and parts.dagger.get("run_id"):
        return parts.dagger["run_id"]
    if parts.finetune is not None and parts.finetune.record.get("run_id"):
        return parts.finetune.record["run_id"]
    return parts.training_record.get("run_id")


def _log(path: Path, parts: RunParts, tracking_uri: str) -> str | None:
    """Attach the page to the run's MLflow run when that run is in ``tracking_uri``."""
    from pipeline.tracking.store import client_for, sqlite_path

    run_id = _run_to_log(parts)
    database = sqlite_path(tracking_uri)
    if not run_id or (database is not None and not database.is_file()):
        return None  # never create a store just to look
    from mlflow.exceptions import MlflowException

    try:
        client_for(tracking_uri).get_run(run_id)
    except MlflowException:
        return None
    from pipeline.tracking import open_tracker

    with open_tracker(tracking_uri, resume_run_id=run_id) as tracker:
        tracker.log_artifact(path, ARTIFACT_DIR)
    return run_id
