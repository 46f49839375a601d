"""Rollout workers: processes that keep their simulation alive and run whole episodes.

Measured on 2 cores: gymnasium's ``AsyncVectorEnv`` synchronises every control step and
gives ~1.0x; a pool whose workers each own an environment and run complete episodes
gives 1.6-1.9x. :class:`RolloutWorker` holds no process logic of its own (constructor
arguments picklable, methods return plain data), so the same class can later run as a
Ray actor for multi-machine rollouts.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from pipeline.policies import Policy
from pipeline.rollout import EpisodeResult, run_episode

# Without these, two PyBullet/NumPy processes on two cores each run ~3.5x slower
# (BLAS thread pools oversubscribe the cores).
WORKER_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}


@dataclass(frozen=True)
class EpisodeTask:
    """One episode to run: its position in the output, seed, reset options, video path."""

    index: int
    seed: int
    options: dict[str, Any] | None = None
    video: str | None = None


class RolloutWorker:
    """Owns one environment and one policy; runs whole episodes on request."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], policy: Policy) -> None:
        import sim  # noqa: F401  (registers the environments in this process)

        self.env = gym.make(env_id, **env_kwargs)
        self.policy = policy

    def run(self, task: EpisodeTask) -> tuple[int, EpisodeResult]:
        video = Path(task.video) if task.video else None
        return task.index, run_episode(self.env, self.policy, task.seed, task.options, video)

    def close(self) -> None:
        self.env.close()


_worker: RolloutWorker | None = None


def _init_process(env_id: str, env_kwargs: dict[str, Any], policy: Policy) -> None:
    global _worker
    _worker = RolloutWorker(env_id, env_kwargs, policy)


def _run_in_process(task: EpisodeTask) -> tuple[int, EpisodeResult]:
    assert _worker is not None, "worker process was not initialised"
    return _worker.run(task)


@contextmanager
def _worker_environment() -> Iterator[None]:
    """Set thread limits in os.environ while spawning, so children inherit them."""
    saved = {k: os.environ.get(k) for k in WORKER_THREAD_ENV}
    os.environ.update(WORKER_THREAD_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class WorkerPool:
    """Long-lived rollout workers: ``workers=1`` runs in this process, more in a spawn pool.

    Each worker builds its environment once and keeps it for every episode it is given,
    so repeated calls to :meth:`run` pay no start-up cost.
    """

    def __init__(
        self, env_id: str, env_kwargs: dict[str, Any], policy: Policy, workers: int = 1
    ) -> None:
        self.workers = workers
        self._local: RolloutWorker | None = None
        self._pool: Any = None
        if workers <= 1:
            self._local = RolloutWorker(env_id, env_kwargs, policy)
        else:
            ctx = mp.get_context("spawn")
            with _worker_environment():
                self._pool = ctx.Pool(workers, _init_process, (env_id, env_kwargs, policy))

    def run(
        self,
        tasks: Sequence[EpisodeTask],
        on_result: Callable[[EpisodeResult], None] | None = None,
    ) -> list[EpisodeResult]:
        """Run ``tasks`` and return their results in task order."""
        results: dict[int, EpisodeResult] = {}
        if self._local is not None:
            items: Iterator[tuple[int, EpisodeResult]] = map(self._local.run, tasks)
        else:
            items = self._pool.imap_unordered(_run_in_process, tasks)
        for index, result in items:
            results[index] = result
            if on_result:
                on_result(result)
        return [results[t.index] for t in tasks]

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_episodes(
    env_id: str,
    env_kwargs: dict[str, Any],
    policy: Policy,
    tasks: Sequence[EpisodeTask],
    workers: int = 1,
    on_result: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Run ``tasks`` on a fresh :class:`WorkerPool` and return results in task order."""
    with WorkerPool(env_id, env_kwargs, policy, min(workers, len(tasks))) as pool:
        return pool.run(tasks, on_result)
