"""DAgger's lead (``--lead-seconds``): the learner drives alone, unlabelled, for a seeded
random time, and only the window after it (or the one that ends at its fall) is labelled
and stored."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import sim
from datasets import open_dataset
from pipeline.algorithms.dagger import dagger
from pipeline.algorithms.dagger_config import DaggerConfig
from pipeline.rollout.demonstration import (
    EXPERT_ACTED,
    DemoTask,
    Lead,
    lead_rng,
    record_demonstration,
)
from pipeline.rollout.options import episode_step_limit
from pipeline.rollout.policies import ExpertPolicy, RandomPolicy
from pipeline.training.config import load_config

WALK = "sim/HumanoidWalk-v0"
TINY = ["model.hidden_sizes=[32,32]", "data.batch_size=256", "training.epochs=2"]
LONGEST_WALK_STEP_S = 10 / 240  # an action lasts 8-10 physics ticks of 1/240 s


def _walk(seconds: float) -> gym.Env:
    return gym.make(WALK, start_phase="random", episode_seconds=seconds)


def _step_limit(seconds: float) -> int:
    return episode_step_limit(WALK, {"episode_seconds": seconds})


@pytest.fixture(scope="module")
def expert() -> sim.MLPExpert:
    return sim.load_expert(sim.EXPERT_FOR_ENV[WALK])


def test_window_after_the_lead_is_labelled_and_repeats(expert):
    lead = Lead(max_seconds=4.0, window_seconds=1.0, window_steps=_step_limit(1.0))
    env = _walk(5.0)
    learner = ExpertPolicy(expert)
    try:
        windows = 0
        for attempt in range(4):
            task = DemoTask(attempt, 11, beta=0.5, lead=lead)
            episode = record_demonstration(env, expert, task, learner)
            again = record_demonstration(env, expert, task, learner)
            np.testing.assert_array_equal(episode.observations, again.observations)
            np.testing.assert_array_equal(episode.executed_actions, again.executed_actions)
            times = episode.infos["sim_time"]  # simulated time after each stored step
            assert len(episode.actions) <= lead.window_steps
            assert times[-1] - times[0] <= 1.0
            # The expert labelled every stored state, whoever drove there.
            np.testing.assert_allclose(
                episode.actions, expert.act(episode.observations[:-1]), atol=1e-5
            )
            if episode.terminations[-1]:  # the expert's own fall, during the lead or not
                continue
            windows += 1
            drawn = lead_rng(11, attempt).uniform(0.0, 4.0)
            assert drawn < times[0] <= drawn + 2 * LONGEST_WALK_STEP_S
            assert episode.truncations[-1] and times[-1] - times[0] >= 1.0 - LONGEST_WALK_STEP_S
            assert 0 < episode.infos[EXPERT_ACTED].sum() < len(episode.actions)
        assert windows >= 2
    finally:
        env.close()


def test_a_lead_of_zero_is_the_plain_short_episode(expert):
    # The window ends by the same rule as the env's own time limit.
    learner = ExpertPolicy(expert)
    long_env, short_env = _walk(3.0), _walk(1.0)
    try:
        for attempt in range(3):
            lead = Lead(max_seconds=0.0, window_seconds=1.0, window_steps=_step_limit(1.0))
            led = record_demonstration(
                long_env, expert, DemoTask(attempt, 5, beta=0.5, lead=lead), learner
            )
            plain = record_demonstration(short_env, expert, DemoTask(attempt, 5, beta=0.5), learner)
            np.testing.assert_array_equal(led.observations, plain.observations)
            np.testing.assert_array_equal(led.truncations, plain.truncations)
            np.testing.assert_array_equal(led.infos[EXPERT_ACTED], plain.infos[EXPERT_ACTED])
    finally:
        long_env.close()
        short_env.close()


def test_a_fall_during_the_lead_keeps_the_window_that_ends_at_it(expert):
    # A random learner falls within about 0.7 s; the lead drawn here is longer than that.
    lead = Lead(max_seconds=10.0, window_seconds=0.25, window_steps=_step_limit(0.25))
    attempt = next(a for a in range(100) if lead_rng(3, a).uniform(0.0, 10.0) > 2.0)
    env = _walk(11.0)
    learner = RandomPolicy(env.action_space.low, env.action_space.high)
    try:
        task = DemoTask(attempt, 3, beta=0.5, lead=lead)
        episode = record_demonstration(env, expert, task, learner)
    finally:
        env.close()
    times = episode.infos["sim_time"]
    assert episode.fell and episode.terminations[-1]
    assert times[-1] > 0.25 + LONGEST_WALK_STEP_S  # it fell after more than one window
    # From the first stored state (one step before times[0]) to the fall: at most 0.25 s.
    assert 0.25 - 2 * LONGEST_WALK_STEP_S <= times[-1] - times[0] <= 0.25 - 8 / 240
    assert 1 <= len(episode.actions) <= lead.window_steps
    assert not episode.infos[EXPERT_ACTED].any()  # the learner alone drove
    np.testing.assert_allclose(episode.actions, expert.act(episode.observations[:-1]), atol=1e-5)


def test_a_lead_needs_a_learner(expert):
    env = _walk(2.0)
    try:
        with pytest.raises(ValueError, match="a lead needs a learner"):
            lead = Lead(1.0, 1.0, _step_limit(1.0))
            record_demonstration(env, expert, DemoTask(0, 0, lead=lead))
    finally:
        env.close()


def test_dagger_with_a_lead_stores_windows_within_the_budget(run_data, tmp_path):
    # 0.3 s of the run's 0.0165-s steps is 18 steps; the learner leads up to 1 s first.
    with open_dataset(run_data) as ds:
        initial = len(ds)
        steps = sum(info.total_steps for info in ds.episode_infos())
    config = DaggerConfig(iterations=2, episodes_per_iteration=3, eval_episodes=1,
                          episode_seconds=0.3, lead_seconds=1.0,
                          max_labels=steps + 3 * 18 + 17, workers=2)  # fmt: skip
    rows = dagger(run_data, tmp_path / "out", config, load_config(None, TINY)).rows
    assert [r.episodes_added for r in rows] == [0, 3]
    assert rows[-1].labels <= steps + 3 * 18
    expert = sim.load_expert(sim.EXPERT_FOR_ENV["sim/HumanoidRun-v0"])
    with open_dataset(tmp_path / "out" / "aggregate.h5") as ds:
        args = ds.sessions[-1]["recording_args"]
        added = [ds.episode(i.id).load() for i in ds.episode_infos()[initial:]]
    assert args["lead_seconds"] == 1.0 and args["episode_seconds"] == 0.3
    starts = []
    for episode in added:
        times = episode.infos["sim_time"]
        assert len(episode.actions) <= 18 and (episode.truncations[-1] or episode.fell)
        np.testing.assert_allclose(
            episode.actions, expert.act(episode.observations[:-1]), atol=1e-5
        )
        starts.append(times[0])
    assert max(starts) > 2 * 0.0165  # at least one window began after a lead


def test_a_lead_share_leaves_the_other_attempts_at_the_reset(expert):
    learner = ExpertPolicy(expert)
    lead = Lead(max_seconds=4.0, window_seconds=1.0, window_steps=_step_limit(1.0), share=0.5)
    long_env, short_env = _walk(5.0), _walk(1.0)
    led_attempts = []
    try:
        for attempt in range(8):
            task = DemoTask(attempt, 2, beta=0.5, lead=lead)
            episode = record_demonstration(long_env, expert, task, learner)
            if lead_rng(2, attempt).random() < 0.5:
                led_attempts.append(attempt)
                assert episode.infos["sim_time"][0] > 0.05 or episode.fell
                continue
            plain = record_demonstration(short_env, expert, DemoTask(attempt, 2, beta=0.5), learner)
            np.testing.assert_array_equal(episode.observations, plain.observations)
    finally:
        long_env.close()
        short_env.close()
    assert 0 < len(led_attempts) < 8
