"""Tests of ``sim/HumanoidRun-v0``: API, determinism, isolation, and parity with pybullet's env.

The differential tests drive pybullet's own ``HumanoidBulletEnv`` (imported through the
test-only shims of ``reference_run``) and ours with the same seeds and actions.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import gymnasium as gym
import numpy as np
import pybullet as p
import pytest
from gymnasium.utils.env_checker import check_env

import sim  # registers the env ids
from sim import load_expert
from sim.humanoid_run import HumanoidRunEnv
from sim.run_robot import MOTORS

try:
    from tests.reference_run import make_reference_env, reset_reference
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    from reference_run import make_reference_env, reset_reference

REWARD_KEYS = ("reward_alive", "reward_progress", "reward_electricity",
               "reward_joints_at_limit", "reward_feet_collision")  # fmt: skip
INFO_KEYS = (*REWARD_KEYS, "distance", "fell", "sim_time")

Policy = Callable[[np.ndarray], np.ndarray]


@pytest.fixture(scope="module")
def expert() -> Policy:
    return load_expert("humanoid_run").act


@pytest.fixture
def make_env() -> Iterator[Callable[..., HumanoidRunEnv]]:
    envs: list[HumanoidRunEnv] = []

    def factory(**kwargs: object) -> HumanoidRunEnv:
        env = HumanoidRunEnv(**kwargs)
        envs.append(env)
        return env

    yield factory
    for env in envs:
        env.close()


def rollout(
    env: HumanoidRunEnv, seed: int, policy: Policy, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Observations (reset one first) and rewards of up to ``steps`` steps."""
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)


def run_episode(env: HumanoidRunEnv, seed: int, policy: Policy) -> tuple[float, dict, int]:
    obs, _ = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        total += reward
        steps += 1
        if terminated or truncated:
            return total, info, steps


def random_policy(seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    return lambda _obs: rng.uniform(-1.0, 1.0, 17).astype(np.float32)


# -- API -------------------------------------------------------------------------------


def test_spaces_and_info_keys(make_env, expert) -> None:
    env = make_env()
    assert env.observation_space.shape == (44,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (17,) and env.action_space.dtype == np.float32
    assert np.all(env.action_space.low == -1.0) and np.all(env.action_space.high == 1.0)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs in env.observation_space
    assert info == {"distance": 0.0, "fell": False, "sim_time": 0.0}
    assert np.all(obs[42:] == 0.0), "no foot contact is reported before the first step"
    for step in range(1, 4):
        obs, reward, terminated, truncated, info = env.step(expert(obs))
        assert obs in env.observation_space
        assert set(info) == set(INFO_KEYS)
        assert reward == pytest.approx(sum(info[k] for k in REWARD_KEYS), abs=1e-12)
        assert info["sim_time"] == pytest.approx(step * 0.0165)
        assert info["fell"] is False and not terminated and not truncated


def test_check_env() -> None:
    # Through gym.make so the env has a spec and the checker also tries its render modes.
    for kwargs in ({}, {"render_mode": "rgb_array", "render_width": 64, "render_height": 48}):
        env = gym.make("sim/HumanoidRun-v0", **kwargs)
        try:
            check_env(env.unwrapped)
        finally:
            env.close()


def test_registered_with_gym_make() -> None:
    assert "sim/HumanoidRun-v0" in sim.ENV_IDS
    env = gym.make("sim/HumanoidRun-v0", max_steps=3)
    try:
        assert isinstance(env.unwrapped, HumanoidRunEnv)
        env.reset(seed=0)
        assert env.unwrapped.max_steps == 3
    finally:
        env.close()


def test_invalid_arguments_and_actions(make_env) -> None:
    with pytest.raises(ValueError, match="render_mode"):
        HumanoidRunEnv(render_mode="human")
    with pytest.raises(ValueError, match="max_steps"):
        HumanoidRunEnv(max_steps=0)
    for seconds in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="episode_seconds"):
            HumanoidRunEnv(episode_seconds=seconds)
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(16))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.full(17, np.nan))


def test_motor_bookkeeping_follows_names(make_env) -> None:
    env = make_env()
    robot = env._robot
    names = [
        p.getJointInfo(robot.body, j, physicsClientId=robot.client)[1].decode()
        for j in robot.motor_joints
    ]
    assert names == [name for name, _ in MOTORS]
    assert len(set(robot.obs_joints)) == 17 and set(robot.obs_joints) == set(robot.motor_joints)
    # The electricity cost pairs actions with joint speeds index by index, as the reference
    # does; that is only physically meaningful because the two orders coincide here.
    assert robot.obs_joints == robot.motor_joints


def test_close_disconnects_and_is_idempotent() -> None:
    env = HumanoidRunEnv()
    client = env._client
    env.close()
    assert p.getConnectionInfo(physicsClientId=client)["isConnected"] == 0
    env.close()


def test_product_does_not_import_pybullet_envs() -> None:
    code = (
        "import sys, sim.humanoid_run as h; e = h.HumanoidRunEnv(); e.reset(seed=0); "
        "e.step(e.action_space.sample()); "
        "assert not any(m == 'pybullet_envs' or m.startswith(('pybullet_envs.', 'gym.'))"
        " or m == 'gym' for m in sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# -- rendering ---------------------------------------------------------------------------


def test_render_follows_torso(make_env, expert) -> None:
    env = make_env(render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    first = env.render()
    assert first.shape == (240, 320, 3) and first.dtype == np.uint8
    assert first.std() > 10.0, "frame is blank"
    for _ in range(60):
        obs, *_ = env.step(expert(obs))
    later = env.render()
    assert later.std() > 10.0 and not np.array_equal(first, later)

    small = make_env(render_mode="rgb_array", render_width=64, render_height=48)
    small.reset(seed=0)
    assert small.render().shape == (48, 64, 3)
    assert make_env().render() is None


# -- determinism and isolation ---------------------------------------------------------------


def test_same_seed_same_rollout(make_env) -> None:
    a_obs, a_rew = rollout(make_env(), 7, random_policy(1), 60)
    b_obs, b_rew = rollout(make_env(), 7, random_policy(1), 60)
    np.testing.assert_array_equal(a_obs, b_obs)
    np.testing.assert_array_equal(a_rew, b_rew)
    c_obs, _ = rollout(make_env(), 8, random_policy(1), 1)
    assert not np.array_equal(a_obs[0], c_obs[0]), "another seed gives another start"


def test_reset_independent_of_history(make_env, expert) -> None:
    fresh_obs, fresh_rew = rollout(make_env(), 3, expert, 200)
    env = make_env()
    rollout(env, 1, lambda _o: np.zeros(17), 300)  # ends in a fall, bodies on the floor
    rollout(env, 2, random_policy(5), 100)
    env.reset(seed=4)
    env.reset()
    obs, rew = rollout(env, 3, expert, 200)
    np.testing.assert_array_equal(obs, fresh_obs)
    np.testing.assert_array_equal(rew, fresh_rew)


def test_two_envs_interleaved_match_each_alone(make_env, expert) -> None:
    alone_a = rollout(make_env(), 11, expert, 100)
    alone_b = rollout(make_env(), 12, random_policy(2), 100)
    a, b = make_env(), make_env()
    policy_b = random_policy(2)
    obs_a, _ = a.reset(seed=11)
    obs_b, _ = b.reset(seed=12)
    got_a, got_b = [obs_a], [obs_b]
    for _ in range(100):
        obs_a, *_ = a.step(expert(obs_a))
        obs_b, *_ = b.step(policy_b(obs_b))
        got_a.append(obs_a)
        got_b.append(obs_b)
    np.testing.assert_array_equal(np.array(got_a), alone_a[0])
    # Random torques fell within the 100 steps; past the fall only ``b`` kept stepping.
    np.testing.assert_array_equal(np.array(got_b)[: len(alone_b[0])], alone_b[0])


# -- episode end --------------------------------------------------------------------------


def test_fall_terminates(make_env) -> None:
    env = make_env()
    env.reset(seed=0)
    steps = 0
    terminated = truncated = False
    while not (terminated or truncated) and steps < 200:
        obs, _, terminated, truncated, info = env.step(np.zeros(17, dtype=np.float32))
        steps += 1
    assert terminated, "a humanoid without torques must fall"
    assert steps < 100 and not truncated
    assert info["fell"] is True and info["reward_alive"] == -1.0
    assert obs[0] + 0.8 <= 0.78


def test_episode_seconds_sets_the_step_limit(make_env, expert) -> None:
    # 0.5 s of 0.0165-s steps is 30.3 steps: rounded to 30, and it overrides max_steps.
    env = make_env(episode_seconds=0.5, max_steps=1000)
    assert env.unwrapped.max_steps == env.step_limit == 30
    obs, _ = env.reset(seed=0)
    for step in range(1, 31):
        obs, _, terminated, truncated, info = env.step(expert(obs))
        assert not terminated and truncated == (step == 30)
    assert info["sim_time"] == pytest.approx(0.495)


def test_truncation_at_max_steps(make_env, expert) -> None:
    env = make_env(max_steps=5)
    obs, _ = env.reset(seed=0)
    for step in range(1, 6):
        obs, _, terminated, truncated, info = env.step(expert(obs))
        assert not terminated
        assert truncated == (step == 5)
    assert info["sim_time"] == pytest.approx(5 * 0.0165)


def test_vector_envs(make_env, expert, monkeypatch) -> None:
    singles = [rollout(make_env(), seed, expert, 10)[0] for seed in (0, 1)]
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # inherited by the async workers
    vectors = [
        gym.vector.SyncVectorEnv([lambda: HumanoidRunEnv(max_steps=10)] * 2),
        gym.vector.AsyncVectorEnv(
            [lambda: HumanoidRunEnv(max_steps=10)] * 2, context="spawn", shared_memory=True
        ),
    ]
    for venv in vectors:
        try:
            obs, _ = venv.reset(seed=[0, 1])
            got = [obs]
            for _ in range(10):
                # Row by row: a batched matmul rounds differently from single rows.
                actions = np.stack([expert(row) for row in obs])
                obs, _, terminated, truncated, info = venv.step(actions)
                got.append(obs)
            assert truncated.all() and not terminated.any()
            assert set(INFO_KEYS) <= set(info)
            # After truncation the vector env autoresets, so compare up to step 10's obs.
            np.testing.assert_array_equal(np.stack(got, axis=1)[0], singles[0])
            np.testing.assert_array_equal(np.stack(got, axis=1)[1], singles[1])
        finally:
            venv.close()


# -- the expert --------------------------------------------------------------------------


def test_expert_runs_on_two_seeds(make_env, expert) -> None:
    env = make_env()
    for seed in (0, 1):
        total, info, steps = run_episode(env, seed, expert)
        assert steps == 1000 and not info["fell"]
        assert total > 3450.0
        assert 49.0 < info["distance"] < 57.0


# The expert falls from some start states, in the reference exactly as here: with
# gymnasium's seeding, pybullet's own HumanoidBulletEnv falls on seed 14 of 0..19 (and on
# 8 of seeds 0..99 when each seed gets a fresh env; ours: 9 of 100, nearly the same seeds).
# An earlier "0 falls over 25 seeds" came from start states drawn some other way. So falls
# are bounded, and the return statistics are taken over the episodes that survive.
TWENTY_SEED_FALLS = {14}


@pytest.mark.slow
def test_expert_over_twenty_seeds(make_env, expert) -> None:
    env = make_env()
    returns, distances, falls = {}, {}, set()
    for seed in range(20):
        total, info, _ = run_episode(env, seed, expert)
        returns[seed], distances[seed] = total, info["distance"]
        if info["fell"]:
            falls.add(seed)
    assert falls == TWENTY_SEED_FALLS
    survived = [seed for seed in returns if seed not in falls]
    # Measured: mean 3604, min 3435, max 3653, 53.2 m per 1000 steps (3.2 m/s).
    assert np.mean([returns[s] for s in survived]) >= 3550.0
    assert min(returns[s] for s in survived) > 3400.0
    assert 51.0 < np.mean([distances[s] for s in survived]) < 55.0


# -- differential: ours against pybullet's HumanoidBulletEnv ------------------------------


@pytest.fixture(scope="module")
def reference_env() -> Iterator[object]:
    env = make_reference_env()
    yield env
    env.close()


def run_reference_episode(env: object, seed: int, policy: Policy) -> tuple[float, int, bool]:
    """Return, steps and fall of one 1000-step episode of the reference env."""
    obs = reset_reference(env, seed)
    total, steps, done = 0.0, 0, False
    while not done and steps < 1000:
        obs, reward, done, _ = env.step(policy(obs))
        total += reward
        steps += 1
    return total, steps, done


# Measured (pybullet 3.2.7): observations agree bit for bit over whole 1000-step episodes.
# Rewards agree to 1.5e-11: the progress term differences a potential of about -6e4
# (distance to a target 1 km away / 0.0165 s), whose float64 spacing is 7e-12, and the
# distance's square root is computed by different routines (math vs numpy.linalg.norm).
OBS_TOL = 1e-6
REWARD_TOL = 1e-9


@pytest.mark.parametrize("seed", [0, 7])
def test_matches_reference_step_by_step(make_env, reference_env, expert, seed) -> None:
    env = make_env()
    ref_obs = reset_reference(reference_env, seed)
    obs, _ = env.reset(seed=seed)
    np.testing.assert_allclose(obs, ref_obs, rtol=0, atol=OBS_TOL)
    contacts_seen = np.zeros(2)
    for step in range(50):
        action = expert(ref_obs)
        ref_obs, ref_reward, ref_done, _ = reference_env.step(action)
        obs, reward, terminated, _, info = env.step(action)
        np.testing.assert_allclose(obs, ref_obs, rtol=0, atol=OBS_TOL, err_msg=f"step {step}")
        assert reward == pytest.approx(ref_reward, abs=REWARD_TOL)
        terms = [info[k] for k in REWARD_KEYS]
        np.testing.assert_allclose(terms, reference_env.rewards, rtol=0, atol=REWARD_TOL)
        assert terminated == ref_done
        contacts_seen += obs[42:]
    assert np.all(contacts_seen > 0), "both feet touched the floor, so contacts were compared"


def test_matches_reference_under_random_actions(make_env, reference_env) -> None:
    # Random float32 actions exercise clipping, falls and the float32 torque path.
    env = make_env()
    policy = random_policy(3)
    ref_obs = reset_reference(reference_env, 21)
    obs, _ = env.reset(seed=21)
    for step in range(200):
        action = policy(obs) * 1.5
        ref_obs, ref_reward, ref_done, _ = reference_env.step(action)
        obs, reward, terminated, _, _ = env.step(action)
        np.testing.assert_allclose(obs, ref_obs, rtol=0, atol=OBS_TOL, err_msg=f"step {step}")
        assert reward == pytest.approx(ref_reward, abs=REWARD_TOL)
        assert terminated == ref_done
        if terminated:
            break
    assert terminated, "random torques make the humanoid fall"


def test_expert_return_matches_reference(make_env, reference_env, expert) -> None:
    ref_total, ref_steps, done = run_reference_episode(reference_env, 2, expert)
    total, _, steps = run_episode(make_env(), 2, expert)
    assert not done and steps == ref_steps == 1000
    assert 3450.0 < ref_total < 3700.0 and 3450.0 < total < 3700.0
    assert total == pytest.approx(ref_total, abs=1e-6)


@pytest.mark.slow
def test_twenty_expert_episodes_equal_the_reference(make_env, reference_env, expert) -> None:
    env = make_env()
    for seed in range(20):
        ref_total, ref_steps, done = run_reference_episode(reference_env, seed, expert)
        total, info, steps = run_episode(env, seed, expert)
        assert (steps, info["fell"]) == (ref_steps, done), f"seed {seed}"
        assert total == pytest.approx(ref_total, abs=1e-6), f"seed {seed}"
