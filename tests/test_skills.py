"""The motion-imitation family beyond the walk: ``sim/HumanoidBackflip-v0`` and
``sim/HumanoidJump-v0``, their experts, metrics and mirror maps, and parity with pybullet's
own DeepMimic environment loaded with the same skill's args file."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from sim.humanoid_skills import HumanoidBackflipEnv, HumanoidJumpEnv
from sim.humanoid_walk import HumanoidWalkEnv
from sim.mirror import action_names, mirror_spec
from sim.motion_imitation import MotionImitationEnv
from sim.skills import BACKFLIP, JUMP, SKILLS, WALK

try:
    from tests.reference_walk import ReferenceWalk, physics_state
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    from reference_walk import ReferenceWalk, physics_state

NEW_SKILLS = (BACKFLIP, JUMP)
# The reference builds observations in single precision (PyBullet's quaternion helpers);
# upside down in a flip its heading frame is near-degenerate and amplifies that rounding
# (1e-5 relative at most). The physics itself is compared bit for bit.
OBS_ATOL, OBS_RTOL = 2e-6, 1e-5
REWARD_ATOL = 1e-6


@pytest.fixture(params=NEW_SKILLS, ids=lambda s: s.name)
def skill_env(request: pytest.FixtureRequest) -> Iterator[MotionImitationEnv]:
    env = gym.make(request.param.env_id).unwrapped
    yield env
    env.close()


def test_every_skill_is_registered_with_its_expert() -> None:
    assert tuple(s.env_id for s in SKILLS.values()) == sim.MOTION_ENV_IDS
    assert set(sim.MOTION_ENV_IDS) < set(sim.ENV_IDS)
    classes = {WALK: HumanoidWalkEnv, BACKFLIP: HumanoidBackflipEnv, JUMP: HumanoidJumpEnv}
    for skill, cls in classes.items():
        env = gym.make(skill.env_id)
        try:
            assert type(env.unwrapped) is cls and env.unwrapped.skill is skill
            assert env.unwrapped.episode_seconds == skill.episode_seconds
        finally:
            env.close()
        expert = sim.load_expert(skill.expert)
        assert expert.env_id == skill.env_id and sim.EXPERT_FOR_ENV[skill.env_id] == skill.expert
        assert skill.checkpoint.split("/")[-1] in expert.source
        doc = cls.__doc__ or ""
        for section in ("## Description", "## Episode End", "## Version History"):
            assert section in doc, (cls.__name__, section)
    # Three different networks, not one loaded three times.
    firsts = [sim.load_expert(s.expert).weights[0][0, :4] for s in SKILLS.values()]
    assert not np.allclose(firsts[0], firsts[1]) and not np.allclose(firsts[1], firsts[2])


@pytest.mark.parametrize("skill", SKILLS.values(), ids=lambda s: s.name)
def test_check_env_passes_with_only_the_expected_warning(skill) -> None:
    env = gym.make(skill.env_id, start_phase="random", render_mode="rgb_array")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped)
        unexpected = [
            str(w.message) for w in caught if "symmetric and normalized" not in str(w.message)
        ]
        assert unexpected == []
    finally:
        env.close()


def test_distance_is_reported_only_where_the_skill_travels(skill_env) -> None:
    _, info = skill_env.reset(seed=0)
    assert ("distance" in info) == skill_env.skill.travels
    assert skill_env.skill is JUMP or not skill_env.skill.travels
    _, _, _, _, info = skill_env.step(np.zeros(36, dtype=np.float32))
    assert ("distance" in info) == skill_env.skill.travels
    assert {"reward_pose", "fell", "sim_time", "phase"} <= set(info)


def test_truncates_at_the_skills_episode_length() -> None:
    expert = sim.load_expert("humanoid_jump")
    env = gym.make(JUMP.env_id, episode_seconds=0.5).unwrapped
    try:
        obs, _ = env.reset(seed=0)
        steps = 0
        while True:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            steps += 1
            if terminated or truncated:
                break
        assert truncated and not terminated and info["sim_time"] == pytest.approx(0.5, abs=0.04)
        assert 13 <= steps <= 15
    finally:
        env.close()


@pytest.mark.parametrize(
    ("skill", "phase", "steps"),
    [(BACKFLIP, 0.0, 40), (BACKFLIP, 0.55, 40), (JUMP, 0.0, 40), (JUMP, 0.3, 40)],
    ids=["backflip-0", "backflip-0.55", "jump-0", "jump-0.3"],
)
def test_matches_reference_step_by_step(skill, phase: float, steps: int) -> None:
    expert = sim.load_expert(skill.expert)
    env = gym.make(skill.env_id, start_phase=phase).unwrapped
    ref = ReferenceWalk(start_phase=phase, skill=skill.name)
    try:
        obs, _ = env.reset(seed=0)
        np.testing.assert_allclose(obs, ref.observation(), atol=OBS_ATOL, rtol=OBS_RTOL)
        sim_time = 0.0
        for _ in range(steps):
            action = expert.act(obs)
            obs, reward, terminated, _, info = env.step(action)
            ticks = ref.step(action)
            assert info["sim_time"] - sim_time == pytest.approx(ticks / 240)
            sim_time = info["sim_time"]
            np.testing.assert_array_equal(
                physics_state(env._client, env._character.body),
                physics_state(ref.client._client, ref.humanoid._sim_model),
            )
            np.testing.assert_allclose(obs, ref.observation(), atol=OBS_ATOL, rtol=OBS_RTOL)
            expected = ref.reward_terms()
            assert info["reward_pose"] == pytest.approx(expected["reward_pose"], abs=REWARD_ATOL)
            assert reward == pytest.approx(expected["reward"], abs=REWARD_ATOL)
            assert terminated == ref.fell() == ref.ended
            if terminated:
                break
        assert sim_time > 1.0  # the clips' flight phases are inside the compared window
    finally:
        ref.close()
        env.close()


@pytest.mark.parametrize("skill", NEW_SKILLS, ids=lambda s: s.name)
def test_expert_performs_its_skill_from_phase_zero(skill) -> None:
    expert = sim.load_expert(skill.expert)
    env = gym.make(skill.env_id, episode_seconds=4.0).unwrapped
    try:
        obs, _ = env.reset(seed=0)
        poses, heights = [], []
        while True:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            poses.append(info["reward_pose"])
            heights.append(env._character.root_position()[1])
            if terminated or truncated:
                break
        assert truncated and not terminated
        assert np.mean(poses) > 0.5
        if skill is JUMP:  # two jumps of about 1 m each
            assert info["distance"] > 1.5
        # Both take off: the root rises above its standing height (measured: the jump
        # 0.11 m, the backflip 0.38 m).
        assert max(heights) > heights[0] + (0.3 if skill is BACKFLIP else 0.08)
    finally:
        env.close()


# -- mirror maps ---------------------------------------------------------------------------


def _worst_link_error(skill, shift: float, phases: int = 24) -> float:
    """Median over clip phases of the largest link-position difference (metres) between
    the mirrored clip pose and the clip pose ``shift`` of a cycle later; through the walk's
    mirror map, which is every skill's body."""
    spec = dataclasses.replace(mirror_spec(WALK.env_id), phase_shift=shift)
    env = gym.make(skill.env_id).unwrapped
    try:

        def pose(phase: float) -> np.ndarray:
            obs, _ = env.reset(seed=0, options={"start_phase": phase % 1.0})
            return obs.astype(np.float64)

        errors = []
        for phase in (np.arange(phases) + 0.5) / phases:
            mirrored = spec.mirror_obs(pose(phase))[2:107].reshape(15, 7)[:, :3]
            later = pose(phase + shift)[2:107].reshape(15, 7)[:, :3]
            errors.append(np.abs(mirrored - later).max())
        return float(np.median(errors))
    finally:
        env.close()


def test_only_the_walk_clip_is_its_own_mirror_image() -> None:
    assert _worst_link_error(WALK, 0.5) < 1e-3
    for skill in NEW_SKILLS:
        assert skill.mirror_phase_shift is None
        # Measured: backflip 11 cm at shift 0 and 92 cm at 0.5; jump 8.5 and 32 cm.
        assert min(_worst_link_error(skill, 0.0), _worst_link_error(skill, 0.5)) > 0.05


@pytest.mark.parametrize("skill", NEW_SKILLS, ids=lambda s: s.name)
def test_asymmetric_skills_refuse_a_mirror_map_but_name_their_actions(skill) -> None:
    with pytest.raises(ValueError, match="not its own mirror image"):
        mirror_spec(skill.env_id)
    assert action_names(skill.env_id) == mirror_spec(WALK.env_id).act_names
    assert len(action_names(skill.env_id)) == 36
