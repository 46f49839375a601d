"""The local worker pool survives a worker process that dies: the pool starts again and the
tasks not yet taken run again, so the results equal an undisturbed run's, each once."""

from __future__ import annotations

import os
import signal
from functools import partial

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.rollout import workers
from pipeline.rollout.policies import RandomPolicy
from pipeline.rollout.workers import EpisodeTask, RolloutWorker, WorkerPool

RUN = "sim/HumanoidRun-v0"
KWARGS = {"episode_seconds": 0.5}


def _factory():
    policy = RandomPolicy(np.full(17, -1.0), np.full(17, 1.0))
    return partial(RolloutWorker, RUN, KWARGS, policy)


def _rows(results) -> list[tuple]:
    return [(r.seed, r.steps, r.ret, r.distance) for r in results]


def test_a_killed_worker_process_loses_no_task_and_repeats_none():
    tasks = [EpisodeTask(seed) for seed in range(12)]
    with WorkerPool(_factory(), 1) as alone:
        expected = _rows(alone.run(tasks))
    with WorkerPool(_factory(), 2) as pool:
        results = []
        for result in pool.imap(tasks):
            results.append(result)
            if len(results) == 3:
                victim = next(iter(pool._executor._processes))  # one of its two processes
                os.kill(victim, signal.SIGKILL)
        assert pool.restarts == 1
    assert _rows(results) == expected


def test_a_pool_whose_workers_keep_dying_gives_up_in_one_line(monkeypatch):
    monkeypatch.setattr(workers, "RESTARTS", 0)
    tasks = [EpisodeTask(seed) for seed in range(6)]
    with (
        WorkerPool(_factory(), 2) as pool,
        pytest.raises(PipelineError, match="worker processes died 1 times"),
    ):
        for _ in pool.imap(tasks):
            for pid in list(pool._executor._processes):
                os.kill(pid, signal.SIGKILL)
