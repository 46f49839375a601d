"""Tests of ``sim/HumanoidWalk-v0``: API, determinism, isolation, and parity with pybullet's env.

The differential tests drive pybullet's own DeepMimic walk environment (imported through
the test-only shim of ``reference_walk``) and ours from the same start with the same
actions, and compare them step by step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator

import gymnasium as gym
import numpy as np
import pybullet as p
import pytest

from sim import load_expert
from sim.errors import AssetError
from sim.humanoid_walk import HumanoidWalkEnv
from sim.mocap import JOINTS, MotionClip, action_to_targets
from sim.motion_imitation import ACTION_HIGH, ACTION_LOW, ACTION_OFFSET, ACTION_SCALE
from sim.walk_reward import imitation_reward

try:
    from tests.reference_walk import ReferenceWalk, physics_state
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    from reference_walk import ReferenceWalk, physics_state

REWARD_KEYS = ("reward_pose", "reward_velocity", "reward_end_effector", "reward_root")
INFO_KEYS = (*REWARD_KEYS, "distance", "fell", "sim_time", "phase")

Policy = Callable[[np.ndarray], np.ndarray]


@pytest.fixture(scope="module")
def expert() -> Policy:
    return load_expert("humanoid_walk").act


@pytest.fixture
def make_env() -> Iterator[Callable[..., HumanoidWalkEnv]]:
    envs: list[HumanoidWalkEnv] = []

    def factory(**kwargs: object) -> HumanoidWalkEnv:
        env = HumanoidWalkEnv(**kwargs)  # type: ignore[arg-type]
        envs.append(env)
        return env

    yield factory
    for env in envs:
        env.close()


def rollout(env: gym.Env, seed: int, policy: Policy, steps: int) -> tuple[np.ndarray, list]:
    """Observations (the reset one first) and (reward, terminated, truncated, info) tuples."""
    obs, _ = env.reset(seed=seed)
    observations, outcomes = [obs], []
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        observations.append(obs)
        outcomes.append((reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return np.array(observations), outcomes


# -- API -------------------------------------------------------------------------------


def test_spaces_and_info_keys(make_env: Callable[..., HumanoidWalkEnv]) -> None:
    env = make_env(start_phase=0.25)
    assert env.observation_space.shape == (197,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (36,) and env.action_space.dtype == np.float32
    obs, info = env.reset(seed=1)
    assert obs.dtype == np.float32 and obs in env.observation_space
    assert set(INFO_KEYS) <= set(info)
    assert info["phase"] == pytest.approx(0.25) and obs[0] == pytest.approx(0.25)
    assert info["sim_time"] == 0.0 and info["distance"] == 0.0 and info["fell"] is False
    # At reset the character is exactly in the clip's pose.
    assert info["reward_pose"] == pytest.approx(1.0) and info["reward_root"] == pytest.approx(1.0)
    obs, reward, _, _, info = env.step(np.zeros(36, dtype=np.float32))
    assert obs.dtype == np.float32 and obs.shape == (197,)
    assert isinstance(reward, float) and 0.0 < reward <= 1.0
    assert set(INFO_KEYS) <= set(info)
    assert all(0.0 < info[k] <= 1.0 for k in REWARD_KEYS)
    # An action lasts 8 or 9 ticks of 1/240 s.
    assert info["sim_time"] in (8 / 240, 9 / 240)
    assert isinstance(info["fell"], bool)


def test_action_constants_match_the_reference() -> None:
    ref = ReferenceWalk()
    try:
        np.testing.assert_allclose(ACTION_LOW, ref.env.build_action_bound_min(0), rtol=1e-6)
        np.testing.assert_allclose(ACTION_HIGH, ref.env.build_action_bound_max(0), rtol=1e-6)
        np.testing.assert_array_equal(ACTION_OFFSET, ref.env.build_action_offset(0))
        np.testing.assert_array_equal(ACTION_SCALE, ref.env.build_action_scale(0))
    finally:
        ref.close()


def test_bad_arguments_and_actions_are_rejected(make_env: Callable[..., HumanoidWalkEnv]) -> None:
    with pytest.raises(ValueError, match="start_phase"):
        HumanoidWalkEnv(start_phase=1.0)
    with pytest.raises(ValueError, match="start_phase"):
        HumanoidWalkEnv(start_phase="sometimes")
    with pytest.raises(ValueError, match="start_phase"):
        HumanoidWalkEnv(start_phase=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="render_mode"):
        HumanoidWalkEnv(render_mode="human")
    with pytest.raises(ValueError, match="episode_seconds"):
        HumanoidWalkEnv(episode_seconds=0)
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(35))
    bad = np.zeros(36)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        env.step(bad)


def test_reset_option_sets_the_start_phase(make_env: Callable[..., HumanoidWalkEnv]) -> None:
    env = make_env(start_phase="random")
    _, info = env.reset(seed=0, options={"start_phase": 0.5})
    assert info["phase"] == pytest.approx(0.5)
    phases = {round(env.reset(seed=s)[1]["phase"], 6) for s in range(5)}
    assert len(phases) == 5 and all(0.0 <= ph < 1.0 for ph in phases)


def test_close_disconnects(make_env: Callable[..., HumanoidWalkEnv]) -> None:
    env = make_env()
    env.reset(seed=0)
    client = env._client
    env.close()
    assert not p.isConnected(physicsClientId=client)
    env.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        env.reset(seed=0)


# -- episode end -----------------------------------------------------------------------


def test_zero_actions_fall_and_terminate(make_env: Callable[..., HumanoidWalkEnv]) -> None:
    env = make_env()
    _, outcomes = rollout(env, 0, lambda obs: np.zeros(36), steps=200)
    _, terminated, truncated, info = outcomes[-1]
    assert terminated and not truncated and info["fell"]
    assert info["sim_time"] < 3.0
    assert not any(o[1] for o in outcomes[:-1])


def test_random_actions_fall_and_terminate(make_env: Callable[..., HumanoidWalkEnv]) -> None:
    env = make_env(start_phase="random")
    env.action_space.seed(3)
    _, outcomes = rollout(env, 3, lambda obs: env.action_space.sample(), steps=200)
    assert outcomes[-1][1] and outcomes[-1][3]["fell"]


def test_truncation_after_episode_seconds(
    make_env: Callable[..., HumanoidWalkEnv], expert: Policy
) -> None:
    env = make_env(episode_seconds=0.5)
    _, outcomes = rollout(env, 0, expert, steps=100)
    _, terminated, truncated, info = outcomes[-1]
    assert truncated and not terminated and not info["fell"]
    # 0.5 s = 120 ticks; the last action runs to its end (8 or 9 ticks each).
    assert 0.5 <= info["sim_time"] < 0.5 + 9 / 240
    assert len(outcomes) == 14
    # The bound DAgger's label budget counts with: at least 8 ticks per action.
    assert env.step_limit == 15 and make_env().step_limit == 600  # 20 s: 541 taken


# -- determinism and isolation ---------------------------------------------------------


def test_same_seed_same_rollout(make_env: Callable[..., HumanoidWalkEnv], expert: Policy) -> None:
    env = make_env(start_phase="random")
    first, first_out = rollout(env, 7, expert, steps=40)
    rollout(env, 8, lambda obs: np.zeros(36), steps=60)  # something else in between
    again, again_out = rollout(env, 7, expert, steps=40)
    np.testing.assert_array_equal(first, again)
    assert [o[0] for o in first_out] == [o[0] for o in again_out]
    other = make_env(start_phase="random")
    fresh, _ = rollout(other, 7, expert, steps=40)
    np.testing.assert_array_equal(first, fresh)


@pytest.mark.parametrize(("seed", "noise"), [(11, 0.3), (33, 0.1)])
def test_an_episode_does_not_depend_on_the_contacts_of_earlier_ones(
    make_env: Callable[..., HumanoidWalkEnv], expert: Policy, seed: int, noise: float
) -> None:
    """A fall first, then a noisy expert episode: the same as in a fresh env. Without sorted
    overlapping pairs these two differed from steps 14 and 47 (a DAgger run's aggregate
    diverged from an earlier run of the same seeds on the same machine this way)."""

    def noisy(rng: np.random.Generator) -> Policy:
        return lambda obs: expert(obs) + noise * rng.standard_normal(36)

    fresh, _ = rollout(make_env(start_phase="random"), seed, noisy(np.random.default_rng(seed)),
                       steps=90)  # fmt: skip
    env = make_env(start_phase="random")
    rollout(env, 123, lambda obs: np.zeros(36), steps=200)  # falls: contacts all over
    after, _ = rollout(env, seed, noisy(np.random.default_rng(seed)), steps=90)
    np.testing.assert_array_equal(after, fresh)


def test_two_envs_interleaved_match_each_alone(
    make_env: Callable[..., HumanoidWalkEnv], expert: Policy
) -> None:
    a, b = make_env(start_phase="random"), make_env(start_phase="random")
    alone_a, _ = rollout(a, 11, expert, steps=30)
    alone_b, _ = rollout(b, 12, expert, steps=30)
    obs_a, _ = a.reset(seed=11)
    obs_b, _ = b.reset(seed=12)
    inter_a, inter_b = [obs_a], [obs_b]
    for _ in range(30):
        obs_a = a.step(expert(obs_a))[0]
        obs_b = b.step(expert(obs_b))[0]
        inter_a.append(obs_a)
        inter_b.append(obs_b)
    np.testing.assert_array_equal(alone_a, np.array(inter_a))
    np.testing.assert_array_equal(alone_b, np.array(inter_b))


def _vector_rollout(envs: gym.vector.VectorEnv, expert: Policy, steps: int) -> np.ndarray:
    obs, _ = envs.reset(seed=[21, 22])
    out = [obs]
    for _ in range(steps):
        obs, _, terminated, _, infos = envs.step(expert(obs).astype(np.float32))
        assert not terminated.any() and set(INFO_KEYS) <= set(infos)
        out.append(obs)
    return np.array(out)


def test_sync_and_async_vector_envs(
    expert: Policy, make_env: Callable[..., HumanoidWalkEnv], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two worker processes share two cores; multi-threaded BLAS would oversubscribe them.
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    factory = functools.partial(HumanoidWalkEnv, start_phase="random")
    sync = gym.vector.SyncVectorEnv([factory, factory])
    try:
        sync_obs = _vector_rollout(sync, expert, steps=8)
    finally:
        sync.close()
    assert sync_obs.shape == (9, 2, 197) and sync_obs.dtype == np.float32
    single, _ = rollout(
        make_env(start_phase="random"), 22, lambda o: expert(o).astype(np.float32), 8
    )
    np.testing.assert_array_equal(sync_obs[:, 1], single)
    asyn = gym.vector.AsyncVectorEnv([factory, factory], context="spawn")
    try:
        async_obs = _vector_rollout(asyn, expert, steps=8)
    finally:
        asyn.close()
    np.testing.assert_array_equal(sync_obs, async_obs)


# -- rendering and the ghost -----------------------------------------------------------


def test_render_follows_the_humanoid(make_env: Callable[..., HumanoidWalkEnv]) -> None:
    env = make_env(render_mode="rgb_array", render_width=96, render_height=64)
    env.reset(seed=0)
    frame = env.render()
    assert frame is not None and frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    assert frame.std() > 10  # sky and floor at least
    # The humanoid is in the middle of the picture: without it, the middle changes.
    client, body = env._client, env._character.body
    p.resetBasePositionAndOrientation(body, [0, -50, 0], [0, 0, 0, 1], physicsClientId=client)
    without = env.camera.render(client, env._start_root)  # same camera target as before
    middle = (slice(16, 48), slice(32, 64))
    assert np.abs(frame[middle].astype(int) - without[middle]).max() > 50
    assert make_env().render() is None


def test_the_rendered_humanoid_is_coloured_and_observes_as_unrendered(
    make_env: Callable[..., HumanoidWalkEnv], expert: Policy
) -> None:
    rendered = make_env(render_mode="rgb_array", start_phase="random")
    plain = make_env(start_phase="random")
    # The link colours are visual only: the same seed gives the same observations and
    # rewards, step by step, with rendering on or off.
    obs_r, outcomes_r = rollout(rendered, 5, expert, 40)
    obs_p, outcomes_p = rollout(plain, 5, expert, 40)
    np.testing.assert_array_equal(obs_r, obs_p)
    assert [o[:3] for o in outcomes_r] == [o[:3] for o in outcomes_p]
    # Red, orange and yellow pixels (the URDF's humanoid is white-grey, the floor grey/blue).
    frame = rendered.render().astype(int)
    assert (frame[..., 0] - frame[..., 2] > 80).sum() > 1000


def test_ghost_is_invisible_and_never_collides(
    make_env: Callable[..., HumanoidWalkEnv], expert: Policy
) -> None:
    env = make_env(render_mode="rgb_array", render_width=96, render_height=64)
    obs, _ = env.reset(seed=0)
    client, ghost = env._client, env._character.ghost
    for _ in range(10):
        obs = env.step(expert(obs))[0]
        # The ghost overlaps the character (it shows the clip's pose) and the floor.
        assert p.getContactPoints(bodyA=ghost, physicsClientId=client) == ()
    frame = env.render()
    p.resetBasePositionAndOrientation(ghost, [50, 0.85, 50], [0, 0, 0, 1], physicsClientId=client)
    np.testing.assert_array_equal(frame, env.render())


# -- behaviour -------------------------------------------------------------------------


def test_expert_walks_from_phase_zero(
    make_env: Callable[..., HumanoidWalkEnv], expert: Policy
) -> None:
    env = make_env(episode_seconds=4.0)
    _, outcomes = rollout(env, 0, expert, steps=200)
    _, terminated, truncated, info = outcomes[-1]
    assert truncated and not terminated
    assert info["distance"] > 2.8  # about 0.87 m/s
    assert np.mean([o[3]["reward_pose"] for o in outcomes]) > 0.88


# -- the motion clip and the reward ----------------------------------------------------


def test_clip_interpolates_and_loops() -> None:
    env = HumanoidWalkEnv()
    clip = env.clip
    env.close()
    assert clip.num_frames == 39 and clip.cycle_time == pytest.approx(38 * 0.033332)
    np.testing.assert_allclose(clip.travel_direction, [1.0, 0.0, 0.0])
    frame0 = clip.frames[0]
    pose = clip.pose_at(0.0)
    np.testing.assert_allclose(pose.base_position, frame0[1:4])
    np.testing.assert_allclose(pose.base_orientation, [*frame0[5:8], frame0[4]], atol=1e-7)
    # One cycle later: the same pose, moved on by the cycle offset.
    later = clip.pose_at(clip.cycle_time)
    np.testing.assert_allclose(
        np.subtract(later.base_position, pose.base_position), clip.cycle_offset, atol=1e-9
    )
    np.testing.assert_allclose(later.joint_positions[0], pose.joint_positions[0], atol=1e-7)
    assert clip.phase(1.5 * clip.cycle_time) == pytest.approx(0.5)
    assert clip.phase(-0.25 * clip.cycle_time) == pytest.approx(0.75)


def test_bad_clip_file_names_the_file(tmp_path) -> None:
    bad = tmp_path / "clip.txt"
    bad.write_text('{"Frames": [[1, 2, 3]]}')
    with pytest.raises(AssetError, match=r"clip\.txt"):
        MotionClip.load(bad)
    bad.write_text("not json")
    with pytest.raises(AssetError, match=r"clip\.txt"):
        MotionClip.load(bad)


def test_action_to_targets_axis_angle() -> None:
    action = np.zeros(36)
    action[0:4] = [math.pi / 2, 0.0, 0.0, 2.0]  # chest: 90 degrees about z (axis unnormalised)
    action[12] = 0.7  # right knee angle
    targets = action_to_targets(action)
    assert len(targets) == len(JOINTS)
    s = math.sqrt(0.5)
    np.testing.assert_allclose(targets[0], [0.0, 0.0, s, s], atol=1e-7)
    assert targets[3] == (0.7,)
    np.testing.assert_allclose(targets[1], [0.0, 0.0, 0.0, 1.0])  # zero angle: identity


def test_reward_is_one_for_a_perfect_match(make_env: Callable[..., HumanoidWalkEnv]) -> None:
    env = make_env(start_phase=0.3)
    env.reset(seed=0)
    state = env._character.read().body
    terms = imitation_reward(state, state)
    values = (terms.pose, terms.velocity, terms.end_effector, terms.root, terms.total)
    assert values == pytest.approx((1.0,) * 5, abs=1e-12)


# -- differential test against pybullet's implementation --------------------------------

# Why observations and reward terms agree closely but not bit for bit (the physics does):
# our observations are float32, and the reference builds its observation and its reward
# angles with PyBullet's quaternion helpers, which compute in single precision. Measured:
# observation deviation <= 9.6e-7 (abs), reward terms <= 3e-7.
OBS_ATOL, OBS_RTOL = 2e-6, 1e-6
REWARD_ATOL = 1e-6


@pytest.mark.parametrize(("phase", "steps", "falls"), [(0.0, 30, False), (0.37, 80, True)])
def test_matches_reference_step_by_step(
    expert: Policy, make_env: Callable[..., HumanoidWalkEnv], phase: float, steps: int, falls: bool
) -> None:
    env = make_env(start_phase=phase)
    ref = ReferenceWalk(start_phase=phase)
    try:
        obs, _ = env.reset(seed=0)
        np.testing.assert_allclose(obs, ref.observation(), atol=OBS_ATOL, rtol=OBS_RTOL)
        sim_time, fell = 0.0, False
        for _ in range(steps):
            action = expert(obs)
            obs, reward, terminated, _, info = env.step(action)
            ticks = ref.step(action)
            # Same number of physics ticks, bit-identical physics.
            assert info["sim_time"] - sim_time == pytest.approx(ticks / 240)
            sim_time = info["sim_time"]
            np.testing.assert_array_equal(
                physics_state(env._client, env._character.body),
                physics_state(ref.client._client, ref.humanoid._sim_model),
            )
            np.testing.assert_allclose(obs, ref.observation(), atol=OBS_ATOL, rtol=OBS_RTOL)
            expected = ref.reward_terms()
            for key in REWARD_KEYS:
                assert info[key] == pytest.approx(expected[key], abs=REWARD_ATOL), key
            assert reward == pytest.approx(expected["reward"], abs=REWARD_ATOL)
            assert terminated == ref.fell() == ref.ended
            if terminated:
                fell = True
                break
        assert fell == falls
    finally:
        ref.close()


# -- slow: the measured expert facts ------------------------------------------------------


@pytest.mark.slow
def test_expert_walks_20_seconds_from_phase_zero(
    make_env: Callable[..., HumanoidWalkEnv], expert: Policy
) -> None:
    _, outcomes = rollout(make_env(), 0, expert, steps=1000)
    _, terminated, truncated, info = outcomes[-1]
    assert truncated and not terminated and len(outcomes) == 541
    assert info["distance"] >= 15.0  # reference: 17.1 m along x (17.4 m horizontally)
    assert 0.9 <= np.mean([o[3]["reward_pose"] for o in outcomes]) <= 0.95


@pytest.mark.slow
def test_expert_survives_most_random_starts(
    make_env: Callable[..., HumanoidWalkEnv], expert: Policy
) -> None:
    env = make_env(start_phase="random")
    survived = 0
    for seed in range(40):
        _, outcomes = rollout(env, seed, expert, steps=1000)
        survived += not outcomes[-1][3]["fell"]
    assert survived / 40 >= 0.65  # reference: 67-80%
