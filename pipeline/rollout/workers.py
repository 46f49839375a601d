"""Rollout workers: processes that keep their simulation alive and run whole episodes.

Measured on 2 cores: gymnasium's ``AsyncVectorEnv`` synchronises every control step and
gives ~1.0x; a pool whose workers each own an environment and run complete episodes
gives 1.6-1.9x. A worker is any object with ``run(task)`` and ``close()``, built in its
process by a picklable factory; :class:`RolloutWorker` and :class:`DemoWorker` hold no
process logic (constructor arguments picklable, methods return plain data), so the same
classes can later run as Ray actors for multi-machine rollouts.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import gymnasium as gym

from datasets import Episode
from pipeline.rollout.demonstration import DemoTask, record_demonstration
from pipeline.rollout.episodes import EpisodeResult, Relabeller, run_episode
from pipeline.rollout.policies import Policy
from pipeline.rollout.video import Filming
from sim import MLPExpert

# Without these, two PyBullet/NumPy processes on two cores each run ~3.5x slower
# (BLAS thread pools oversubscribe the cores).
WORKER_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}


class Worker(Protocol):
    """What a pool needs from a worker."""

    def run(self, task: Any) -> Any: ...

    def close(self) -> None: ...


def _make_env(env_id: str, env_kwargs: dict[str, Any]) -> gym.Env:
    import sim  # noqa: F401  (registers the environments in this process)

    return gym.make(env_id, **env_kwargs)


@dataclass(frozen=True)
class EpisodeTask:
    """One evaluation episode: seed, reset options, filming, whether to keep actions."""

    seed: int
    options: dict[str, Any] | None = None
    video: Filming | None = None
    trace: bool = False


class RolloutWorker:
    """Owns one environment and one policy; runs whole episodes and returns metrics.

    With a ``relabel`` scorer every action is compared with a reference (the expert) on
    the state the policy reached.
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any],
        policy: Policy,
        relabel: Relabeller | None = None,
    ) -> None:
        self.env = _make_env(env_id, env_kwargs)
        self.policy = policy
        self.relabel = relabel

    def run(self, task: EpisodeTask) -> EpisodeResult:
        return run_episode(self.env, self.policy, task.seed, task.options, task.video,
                           relabel=self.relabel, trace=task.trace)  # fmt: skip

    def close(self) -> None:
        self.env.close()


class DemoWorker:
    """Owns one environment and an expert (and, for DAgger, the learner it mixes with);
    records whole expert-labelled episodes."""

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any],
        expert: MLPExpert,
        learner: Policy | None = None,
    ) -> None:
        self.env = _make_env(env_id, env_kwargs)
        self.expert = expert
        self.learner = learner

    def run(self, task: DemoTask) -> Episode:
        return record_demonstration(self.env, self.expert, task, self.learner)

    def close(self) -> None:
        self.env.close()


_worker: Worker | None = None


def _init_process(factory: Callable[[], Worker]) -> None:
    global _worker
    _worker = factory()


def _run_in_process(task: Any) -> Any:
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
    """Long-lived workers: ``workers=1`` runs in this process, more in a spawn pool.

    Each worker is built once by ``factory`` and keeps its environment for every task it
    is given, so repeated calls pay no start-up cost.
    """

    def __init__(self, factory: Callable[[], Worker], workers: int = 1) -> None:
        self.workers = max(1, workers)
        self._local: Worker | None = None
        self._pool: Any = None
        self._blas_limits: Any = None
        if self.workers == 1:
            # The same reason as WORKER_THREAD_ENV, in this process: NumPy is already
            # imported, so limit its BLAS pool at run time. Measured: with another process
            # busy on the second core, the walk expert loop fell from ~680 to ~190 steps/s
            # with OpenBLAS's default two threads.
            from threadpoolctl import threadpool_limits

            self._blas_limits = threadpool_limits(limits=1, user_api="blas")
            self._local = factory()
        else:
            ctx = mp.get_context("spawn")
            with _worker_environment():
                self._pool = ctx.Pool(self.workers, _init_process, (factory,))

    def imap(self, tasks: Iterable[Any], window: int | None = None) -> Iterator[Any]:
        """Results of ``tasks`` in task order, with at most ``window`` tasks in flight.

        ``tasks`` may be endless: tasks are taken from it only as results are consumed, so
        a caller can stop whenever it has enough (unfinished tasks are simply dropped).
        """
        if self._local is not None:
            yield from map(self._local.run, tasks)
            return
        window = window or 2 * self.workers
        pending: deque[Any] = deque()
        source = iter(tasks)
        for task in source:
            pending.append(self._pool.apply_async(_run_in_process, (task,)))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().get()
            for task in source:
                pending.append(self._pool.apply_async(_run_in_process, (task,)))
                break
            yield result

    def run(
        self, tasks: Sequence[Any], on_result: Callable[[Any], None] | None = None
    ) -> list[Any]:
        """Run ``tasks`` and return their results in task order."""
        results = []
        for result in self.imap(tasks):
            results.append(result)
            if on_result:
                on_result(result)
        return results

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
        if self._blas_limits is not None:
            self._blas_limits.restore_original_limits()
            self._blas_limits = None
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def rollout_pool(
    env_id: str,
    env_kwargs: dict[str, Any],
    policy: Policy,
    workers: int = 1,
    relabel: Relabeller | None = None,
) -> WorkerPool:
    """A pool of :class:`RolloutWorker`."""
    return WorkerPool(partial(RolloutWorker, env_id, env_kwargs, policy, relabel), workers)


def demo_pool(
    env_id: str,
    env_kwargs: dict[str, Any],
    expert: MLPExpert,
    workers: int = 1,
    learner: Policy | None = None,
) -> WorkerPool:
    """A pool of :class:`DemoWorker` (with ``learner``: DAgger's mixture rollouts)."""
    return WorkerPool(partial(DemoWorker, env_id, env_kwargs, expert, learner), workers)


def run_episodes(
    env_id: str,
    env_kwargs: dict[str, Any],
    policy: Policy,
    tasks: Sequence[EpisodeTask],
    workers: int = 1,
    on_result: Callable[[EpisodeResult], None] | None = None,
    relabel: Relabeller | None = None,
) -> list[EpisodeResult]:
    """Run ``tasks`` on a fresh rollout pool and return results in task order."""
    workers = min(workers, len(tasks))
    with rollout_pool(env_id, env_kwargs, policy, workers, relabel) as pool:
        return pool.run(tasks, on_result)
