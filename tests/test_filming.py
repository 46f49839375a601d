"""Which seed the videos show, and the first-fall clip: real evaluations and rollouts of the
walk env, whose expert falls early from some random start phases (seeds 1000 and 1001)."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import pytest

from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.cli import main
from pipeline.rollout import filming
from pipeline.rollout.filming import film_fall, first_fall_path
from pipeline.rollout.options import env_kwargs
from pipeline.rollout.policies import ExpertPolicy
from pipeline.rollout.workers import EpisodeTask, run_episodes
from pipeline.stages.evaluate import side_by_side_path
from pipeline.stages.record import RecordConfig, record
from pipeline.training.config import load_config
from sim import load_expert

WALK = "sim/HumanoidWalk-v0"
SURVIVES = "first seed on which the expert survives the whole episode"


@pytest.fixture(scope="module")
def walk_policy(tmp_path_factory) -> Path:
    """A tiny walk MLP trained for one epoch on three one-second demonstrations: it falls."""
    root = tmp_path_factory.mktemp("walk-policy")
    data = root / "walk.h5"
    record(RecordConfig(out=data, env_id=WALK, episodes=3, seed=0, episode_seconds=1.0))
    config = load_config(None, ["model.hidden_sizes=[16,16]", "training.epochs=1"])
    train_from_file(data, config, root / "run", tracking_uri=None)
    return root / "run"


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch) -> None:
    # Long temporary paths would otherwise wrap mid-name in the captured output.
    monkeypatch.setenv("COLUMNS", "1000")


def cli(capsys, *args: str) -> tuple[str, dict]:
    """Run a command writing ``--json``; returns its output (whitespace joined) and report."""
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    report = Path(args[args.index("--json") + 1])
    return " ".join(out.split()), json.loads(report.read_text())


def frames(path: Path | str) -> int:
    return sum(1 for _ in iio.imiter(path))


def test_evaluate_films_the_first_seed_the_expert_survives_and_the_first_fall(
    walk_policy, tmp_path, capsys
):
    video = tmp_path / "walk.mp4"
    out, report = cli(
        capsys, "evaluate", "--policy", str(walk_policy), "--episodes", "3", "--seed", "1000",
        "--episode-seconds", "3", "--workers", "1", "--compare-expert", "--video", str(video),
        "--json", str(tmp_path / "e.json"), "--out", str(tmp_path / "report"), "--no-track",
    )  # fmt: skip
    expert = {e["seed"]: e for e in report["episodes"]["expert"]}
    learner = {e["seed"]: e for e in report["episodes"]["learner"]}
    shown = next(seed for seed, e in expert.items() if not e["fell"])
    assert expert[1000]["fell"] and shown > 1000  # the first seed would have shown a fall
    assert report["shown"] == {"seed": shown, "reason": SURVIVES}
    assert f"walk.mp4 (seed {shown}: {SURVIVES})" in out
    assert f"walk_vs_expert.mp4 (seed {shown}: learner (left) and expert (right)" in out
    # The replays reproduce the measured episodes: one frame per state.
    assert frames(video) == learner[shown]["steps"] + 1
    first = iio.imread(video, index=0)
    assert (first[-40:, :120] > 245).all(axis=-1).mean() > 0.3  # the caption's white box
    assert frames(side_by_side_path(video)) == expert[shown]["steps"] + 1
    fall = next(e for e in learner.values() if e["fell"])
    clip = first_fall_path(video)
    assert f"walk_first_fall.mp4 (seed {fall['seed']}: the learner's first fall, at" in out
    shown_steps = min(fall["steps"], round(3.0 * fall["steps"] / fall["survived_s"]))
    assert frames(clip) == shown_steps + 1  # the state before them, then one per step
    assert report["videos"] == [str(video), str(side_by_side_path(video)), str(clip)]
    assert [f["seed"] for f in report["filmed"]] == [shown, shown, fall["seed"]]
    assert "replay differs" not in out


def test_without_falls_there_is_no_first_fall_clip(walk_policy, tmp_path, capsys):
    # 0.2 s is too short for anything to fall.
    video = tmp_path / "walk.gif"
    out, report = cli(
        capsys, "evaluate", "--policy", str(walk_policy), "--episodes", "2", "--seed", "1000",
        "--episode-seconds", "0.2", "--workers", "1", "--video", str(video),
        "--json", str(tmp_path / "e.json"), "--no-track",
    )  # fmt: skip
    reason = "first seed on which the learner survives the whole episode"
    assert report["shown"] == {"seed": 1000, "reason": reason}
    assert f"walk.gif (seed 1000: {reason})" in out
    assert "no first-fall clip: the learner fell on no seed" in out
    assert report["videos"] == [str(video)] and not first_fall_path(video).exists()


def test_rollout_films_the_first_surviving_episode_and_the_first_fall(tmp_path, capsys):
    video = tmp_path / "walk.mp4"
    out, report = cli(
        capsys, "rollout", "--episodes", "3", "--seed", "1000", "--start-phase", "random",
        "--episode-seconds", "3", "--video", str(video), "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    episodes = {e["seed"]: e for e in report["episodes"]}
    shown = next(seed for seed, e in episodes.items() if not e["fell"])
    assert episodes[1000]["fell"] and shown > 1000
    assert f"walk.mp4 (seed {shown}: {SURVIVES})" in out
    assert frames(video) == episodes[shown]["steps"] + 1
    assert "walk_first_fall.mp4 (seed 1000: the expert's first fall, at" in out
    assert first_fall_path(video).exists()
    assert [f["seed"] for f in report["filmed"]] == [shown, 1000]


def test_the_fall_clip_renders_only_the_seconds_before_the_fall(tmp_path, monkeypatch):
    kwargs = env_kwargs(WALK, "random", 3.0)
    expert = ExpertPolicy(load_expert("humanoid_walk"))
    (fall,) = run_episodes(WALK, kwargs, expert, [EpisodeTask(1000)])
    assert fall.fell and fall.steps > 30
    monkeypatch.setattr(filming, "FALL_CLIP_SECONDS", 0.5)
    clip = film_fall(WALK, kwargs, expert, "expert", fall, tmp_path / "fall.gif")
    tail = round(0.5 * fall.steps / fall.survived_s)
    assert frames(clip.path) == tail + 1  # the state before them, then one per step
    assert clip.seed == 1000 and "the last 0.5 s before it" in clip.what
