"""Noise on executed actions (``pipeline.rollout.action_noise``): the seeded wrapper, and
``pipeline evaluate --action-noise`` / ``pipeline compare --action-noise`` in the real
simulation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import sim
from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.cli import main
from pipeline.rollout.action_noise import ActionNoise, NoisyPolicy
from pipeline.rollout.policies import ExpertPolicy
from pipeline.training.config import load_config

RUN = "sim/HumanoidRun-v0"


def run_expert() -> ExpertPolicy:
    return ExpertPolicy(sim.load_expert(sim.EXPERT_FOR_ENV[RUN]))


def test_the_noise_repeats_with_the_episode_seed_and_has_the_asked_scale():
    clean = run_expert()
    scale = clean.expert.action_scale
    noisy = NoisyPolicy(clean, ActionNoise(0.1, scale))
    obs = np.random.default_rng(0).normal(size=44).astype(np.float32)

    def episode(seed: int, steps: int) -> np.ndarray:
        noisy.reset(seed)
        return np.array([noisy.act(obs) for _ in range(steps)])

    first, again, other = episode(5, 4000), episode(5, 4000), episode(6, 4000)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first[:1], other[:1])
    deviation = (first - clean.act(obs)) / scale
    assert np.all(np.abs(deviation.mean(axis=0)) < 0.1 * 5 / np.sqrt(4000))
    np.testing.assert_allclose(deviation.std(axis=0), 0.1, rtol=0.08)
    assert noisy.name == "expert" and noisy.camera is None
    another = NoisyPolicy(clean, ActionNoise(0.1, scale), stream=1)
    another.reset(5)
    assert not np.allclose(another.act(obs), first[0])  # same start, an independent draw


def test_a_camera_policy_keeps_its_camera_and_gets_its_frames():
    @dataclass
    class Seeing:
        camera: str = "84x84 chase"
        name: str = "seeing"

        def reset(self, seed: int) -> None:
            del seed

        def act(self, obs: np.ndarray, frame: np.ndarray) -> np.ndarray:
            return obs + frame.mean()

    noisy = NoisyPolicy(Seeing(), ActionNoise(0.0, np.ones(3)))
    noisy.reset(0)
    assert noisy.camera == "84x84 chase"
    np.testing.assert_array_equal(noisy.act(np.zeros(3), np.full((2, 2), 4.0)), np.full(3, 4.0))


@pytest.fixture(scope="module")
def policy(run_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("noise") / "run"
    config = load_config(None, ["model.hidden_sizes=[32,32]", "training.epochs=1",
                                "tracking.enabled=false"])  # fmt: skip
    train_from_file(run_data, config, out)
    return out


def evaluate_json(policy: Path, path: Path, capsys, *extra: str) -> tuple[dict, str]:
    code = main(["evaluate", "--policy", str(policy), "--episodes", "2", "--workers", "1",
                 "--no-track", "--compare-expert", "--json", str(path), *extra])  # fmt: skip
    printed, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(path.read_text()), printed


def returns(report: dict, who: str) -> list[float]:
    return [episode["return"] for episode in report["episodes"][who]]


def test_evaluate_perturbs_learner_and_expert_alike_and_repeats_on_any_workers(
    policy, tmp_path, capsys
):
    clean, _ = evaluate_json(policy, tmp_path / "clean.json", capsys)
    noisy, printed = evaluate_json(policy, tmp_path / "noisy.json", capsys,
                                   "--action-noise", "0.3")  # fmt: skip
    assert clean["action_noise"] == 0.0 and noisy["action_noise"] == 0.3
    assert "perturbed: Gaussian noise of 0.3 x the expert's action scale" in printed
    assert returns(noisy, "expert") != returns(clean, "expert")
    assert returns(noisy, "learner") != returns(clean, "learner")
    assert returns(noisy, "random") == returns(clean, "random")  # the baseline is untouched
    # The run expert shrugs off this much noise (DESIGN.md: robust to 0.3).
    assert all(not episode["fell"] for episode in noisy["episodes"]["expert"])
    code = main(["evaluate", "--policy", str(policy), "--episodes", "2", "--workers", "2",
                 "--no-track", "--action-noise", "0.3",
                 "--json", str(tmp_path / "two.json")])  # fmt: skip
    assert code == 0, capsys.readouterr()
    two = json.loads((tmp_path / "two.json").read_text())
    assert returns(two, "learner") == returns(noisy, "learner")


@pytest.mark.parametrize(
    ("command", "value", "words"),
    [("evaluate", "-0.1", "--action-noise: -0.1 must be a finite number >= 0"),
     ("evaluate", "nan", "--action-noise: nan must be a finite number >= 0"),
     ("evaluate", "abc", "--action-noise"),
     ("compare", "-1", "--action-noise: -1.0 must be a finite number >= 0")],
)  # fmt: skip
def test_bad_action_noise_is_one_line(policy, tmp_path, capsys, command, value, words):
    out = tmp_path / "report.json"
    code = main([command, "--policy", str(policy), "--no-track", "--action-noise", value,
                 "--json", str(out)])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: ") and words in err, err
    assert not out.exists()


def test_compare_perturbs_every_policy_and_says_so(policy, tmp_path, capsys):
    base = ["compare", "--policy", str(policy), "--episodes", "1", "--workers", "1", "--no-track"]
    reports = {}
    for noise in ("0", "0.3"):
        path = tmp_path / f"{noise}.json"
        code = main([*base, "--action-noise", noise, "--json", str(path)])
        printed, err = capsys.readouterr()
        assert code == 0, err
        reports[noise] = json.loads(path.read_text())
    assert reports["0"]["action_noise"] == 0.0 and reports["0.3"]["action_noise"] == 0.3
    assert "perturbed: Gaussian noise of 0.3" in printed
    assert reports["0.3"]["expert"]["return"] != reports["0"]["expert"]["return"]


def test_rollout_perturbs_the_expert_and_repeats(tmp_path, capsys):
    def returns(noise: str, name: str) -> tuple[list[float], str]:
        path = tmp_path / name
        code = main(["rollout", "--env", RUN, "--episodes", "2", "--seed", "4",
                     "--action-noise", noise, "--json", str(path)])  # fmt: skip
        printed, err = capsys.readouterr()
        assert code == 0, err
        report = json.loads(path.read_text())
        assert report["action_noise"] == float(noise)
        return [e["return"] for e in report["episodes"]], printed

    clean, printed = returns("0", "clean.json")
    assert "perturbed" not in printed
    noisy, printed = returns("0.3", "noisy.json")
    assert "perturbed: Gaussian noise of 0.3 x the expert's action scale" in printed
    assert all(a != b for a, b in zip(clean, noisy, strict=True))
    assert returns("0.3", "again.json")[0] == noisy


@pytest.mark.parametrize(
    ("extra", "words"),
    [(["--action-noise", "-2"], "--action-noise: -2.0 must be a finite number >= 0"),
     (["--action-noise", "0.1", "--policy", "random"], "--action-noise: perturbs an expert's")],
)  # fmt: skip
def test_bad_rollout_action_noise_is_one_line(tmp_path, capsys, extra, words):
    out = tmp_path / "rollout.json"
    code = main(["rollout", "--env", RUN, "--episodes", "1", *extra, "--json", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: ") and words in err, err
    assert not out.exists()
