"""Push recovery: a lateral impulse on the torso in the real simulation (``sim.push``), and
``pipeline evaluate --push IMPULSE[@TIME]``."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import sim
from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.cli import main
from pipeline.training.config import load_config

WALK, RUN = "sim/HumanoidWalk-v0", "sim/HumanoidRun-v0"


def expert_rollout(env: gym.Env, seed: int, steps: int) -> tuple[np.ndarray, list[dict]]:
    expert = sim.load_expert(sim.EXPERT_FOR_ENV[env.spec.id])
    obs, info = env.reset(seed=seed)
    observations, infos = [obs], [info]
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(expert.act(obs).astype(np.float32))
        observations.append(obs)
        infos.append(info)
        if terminated or truncated:
            break
    return np.asarray(observations), infos


@pytest.mark.parametrize("env_id", [WALK, RUN])
def test_a_zero_push_changes_nothing_and_a_push_changes_only_what_follows(env_id):
    kwargs = {"start_phase": "random"} if env_id == WALK else {}
    plain, _ = expert_rollout(gym.make(env_id, **kwargs), 3, 60)
    zero, infos = expert_rollout(
        gym.make(env_id, **kwargs, push={"impulse": 0.0, "time": 0.5}), 3, 60
    )
    np.testing.assert_array_equal(plain, zero)  # same start, same physics
    assert infos[0]["pushed"] == 0.0 and infos[-1]["pushed"] == 1.0
    at = 0.5
    pushed, infos = expert_rollout(
        gym.make(env_id, **kwargs, push={"impulse": 5.0, "time": at}), 3, 60
    )
    first = next(i for i, info in enumerate(infos) if info["pushed"])
    # The first physics step that starts at or after the push time: within one control step.
    assert infos[first]["sim_time"] > at and infos[first - 1]["sim_time"] < at + 0.04
    assert infos[0]["push_time"] == at and abs(infos[0]["push_impulse"]) == 5.0
    # Before the push the episode is the unpushed one; the step that pushes differs.
    np.testing.assert_array_equal(pushed[:first], plain[:first])
    assert not np.array_equal(pushed[first], plain[first])


def test_the_run_is_pushed_to_the_side_the_info_names():
    seen = set()
    for seed in range(6):
        env = gym.make(RUN, push={"impulse": 40.0, "time": 0.3})
        obs, infos = expert_rollout(env, seed, 25)
        side = np.sign(infos[0]["push_impulse"])
        seen.add(side)
        # obs[4] is 0.3 x the torso's lateral (left) velocity in its heading frame.
        first = next(i for i, info in enumerate(infos) if info["pushed"])
        assert np.sign(obs[first, 4] - obs[first - 1, 4]) == side
    assert seen == {-1.0, 1.0}  # the side is random per seed


def test_random_push_moments_fall_in_one_gait_cycle_and_repeat_with_the_seed():
    env = gym.make(WALK, start_phase="random", push={"impulse": 3.0})
    cycle = env.unwrapped.clip.cycle_time
    draws = {}
    for seed in range(8):
        _, info = env.reset(seed=seed)
        draws[seed] = (info["push_time"], info["push_impulse"])
        assert 3.0 <= info["push_time"] < 3.0 + cycle
    assert len({t for t, _ in draws.values()}) == 8
    for seed in (0, 5):
        _, info = env.reset(seed=seed)
        assert (info["push_time"], info["push_impulse"]) == draws[seed]


def test_harder_pushes_fell_the_walk_expert_more_often():
    def falls(impulse: float) -> int:
        env = gym.make(WALK, start_phase="random", push={"impulse": impulse, "time": 3.0})
        return sum(expert_rollout(env, seed, 160)[1][-1]["fell"] for seed in range(1000, 1006))

    assert falls(0.0) < falls(12.0)


BAD_PUSHES = [{"impulse": -1}, {"impulse": "x"}, {"time": 1}, {"impulse": 1, "time": -2},
              {"impulse": float("nan")}]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_PUSHES)
def test_bad_push_arguments_are_refused_by_the_env(bad):
    with pytest.raises(ValueError, match="push"):
        gym.make(RUN, push=bad)


@pytest.fixture(scope="module")
def policy(run_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("push") / "run"
    config = load_config(None, ["model.hidden_sizes=[32,32]", "training.epochs=1",
                                "tracking.enabled=false"])  # fmt: skip
    train_from_file(run_data, config, out)
    return out


def test_evaluate_push_reports_it_and_pushes_every_policy_alike(policy, tmp_path, capsys):
    report = tmp_path / "push.json"
    code = main(["evaluate", "--policy", str(policy), "--episodes", "2", "--workers", "1",
                 "--no-track", "--compare-expert", "--push", "30",
                 "--json", str(report)])  # fmt: skip
    printed, _ = capsys.readouterr()
    assert code == 0, printed
    assert "pushed: 30 N*s lateral push on the torso at a random moment of the gait" in printed
    data = json.loads(report.read_text())
    assert data["env_kwargs"]["push"] == {"impulse": 30.0, "time": None}


def test_evaluate_push_reaches_the_learner_and_the_expert_on_each_seed(policy):
    """Evaluating with --push runs every policy's episodes in the pushed simulation: each
    episode is the one a direct rollout in ``gym.make(..., push=...)`` gives on its seed,
    and not the unpushed one."""
    from pipeline.rollout.episodes import run_episode
    from pipeline.rollout.policies import ExpertPolicy
    from pipeline.rollout.policy_source import resolve_policy_source
    from pipeline.stages.evaluate import EXPERT, LEARNER, EvaluateRequest, evaluate, learner_policy

    def evaluated(push: str | None) -> dict:
        request = EvaluateRequest(policy=str(policy), episodes=2, workers=1, compare_expert=True,
                                  push=push)  # fmt: skip
        return evaluate(request, tracking_uri=None).results

    plain, pushed = evaluated(None), evaluated("40@0.1")
    acting = {LEARNER: learner_policy(resolve_policy_source(str(policy), None)),
              EXPERT: ExpertPolicy(sim.load_expert(sim.EXPERT_FOR_ENV[RUN]))}  # fmt: skip
    env = gym.make(RUN, push={"impulse": 40.0, "time": 0.1})
    for name, actor in acting.items():
        for episode, unpushed in zip(pushed[name], plain[name], strict=True):
            assert episode.seed == unpushed.seed and episode.steps > 6  # alive at 0.1 s
            direct = run_episode(env, actor, episode.seed)
            assert (episode.steps, episode.fell) == (direct.steps, direct.fell), name
            assert episode.ret == pytest.approx(direct.ret, rel=1e-9), name
            assert episode.distance == pytest.approx(direct.distance, rel=1e-9, abs=1e-9)
            assert episode.ret != pytest.approx(unpushed.ret, rel=1e-6), name
    env.close()


@pytest.mark.parametrize(
    ("value", "words"),
    [("-3", "the impulse must be a number >= 0"), ("abc", "not IMPULSE[@TIME]"),
     ("5@-1", "the time must be a number >= 0"), ("5@x", "not IMPULSE[@TIME]"),
     ("nan", "the impulse must be")],
)  # fmt: skip
def test_bad_push_is_one_line(policy, tmp_path, capsys, value, words):
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--policy", str(policy), "--no-track", "--push", value,
                 "--json", str(out)])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: --push {value}: ") and words in err, err
    assert not out.exists()
