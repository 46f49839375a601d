"""Rollout workers: processes that keep their simulation alive and run whole episodes.

Measured on 2 cores: gymnasium's ``AsyncVectorEnv`` synchronises every control step and
gives ~1.0x; a pool whose workers each own an environment and run complete episodes
gives 1.6-1.9x. A worker is any object with ``run(task)`` and ``close()``, built in its
process by a picklable factory; :class:`RolloutWorker` and :class:`DemoWorker` hold no
process logic (constructor arguments picklable, methods return plain data), so the same
classes run as Ray actors on a cluster (:mod:`pipeline.rollout.ray_pool`, chosen by
:func:`make_pool`).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import gymnasium as gym

from datasets import Episode
from pipeline.core.errors import PipelineError
from pipeline.rollout.cluster import LOCAL, Backend
from pipeline.rollout.demonstration import DemoTask, record_demonstration
from pipeline.rollout.episodes import EpisodeResult, Relabeller, run_episode
from pipeline.rollout.policies import Policy
from pipeline.rollout.pool_base import Pool
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


RESTARTS = 3
"""Times a local pool replaces its processes after one died, before it gives up."""


class WorkerPool(Pool):
    """Long-lived workers: ``workers=1`` runs in this process, more in a spawn pool.

    Each worker is built once by ``factory`` and keeps its environment for every task it
    is given, so repeated calls pay no start-up cost. A worker process that dies (killed,
    out of memory) breaks the process pool; the pool is then started again and the tasks
    whose results were not yet taken are given to it again: a task's result is a function
    of the task, and each is taken once, so nothing is lost or counted twice.
    """

    def __init__(self, factory: Callable[[], Worker], workers: int = 1) -> None:
        self.workers = max(1, workers)
        self.restarts = 0
        self._factory = factory
        self._local: Worker | None = None
        self._executor: ProcessPoolExecutor | None = None
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
            self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        with _worker_environment():
            executor = ProcessPoolExecutor(self.workers, mp.get_context("spawn"),
                                           _init_process, (self._factory,))  # fmt: skip
            # Start every process now, under the thread limits (the executor would start
            # them one by one as tasks arrive, after the limits are restored).
            for _ in concurrent.futures.as_completed(
                [executor.submit(_started) for _ in range(self.workers)]
            ):
                pass
        return executor

    def _restart(self, error: BaseException) -> None:
        self.restarts += 1
        assert self._executor is not None
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.restarts > RESTARTS:
            raise PipelineError(f"--workers: worker processes died {self.restarts} times, "
                                f"giving up ({error})")  # fmt: skip
        self._executor = self._start()

    def imap(self, tasks: Iterable[Any], window: int | None = None) -> Iterator[Any]:
        if self._local is not None:
            yield from map(self._local.run, tasks)
            return
        window = window or 2 * self.workers
        pending: deque[list[Any]] = deque()  # [future, task]
        source = iter(tasks)

        def submit(task: Any) -> list[Any]:
            assert self._executor is not None
            return [self._executor.submit(_run_in_process, task), task]

        for task in source:
            pending.append(submit(task))
            if len(pending) >= window:
                break
        while pending:
            try:
                result = pending[0][0].result()
            except BrokenProcessPool as error:
                self._restart(error)
                for entry in pending:
                    entry[0] = submit(entry[1])[0]
                continue
            pending.popleft()
            for task in source:
                pending.append(submit(task))
                break
            yield result

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
        if self._blas_limits is not None:
            self._blas_limits.restore_original_limits()
            self._blas_limits = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def _started() -> int:
    """A no-op task: the process that runs it has built its worker."""
    return os.getpid()


def make_pool(factory: Callable[[], Worker], workers: int, backend: Backend = LOCAL) -> Pool:
    """Workers built by ``factory``: local processes, or Ray actors on ``backend``'s cluster."""
    if not backend.is_ray:
        return WorkerPool(factory, workers)
    from pipeline.rollout.ray_pool import RayWorkerPool

    return RayWorkerPool(factory, workers, backend, WORKER_THREAD_ENV)


def rollout_pool(
    env_id: str,
    env_kwargs: dict[str, Any],
    policy: Policy,
    workers: int = 1,
    relabel: Relabeller | None = None,
    backend: Backend = LOCAL,
) -> Pool:
    """A pool of :class:`RolloutWorker`."""
    factory = partial(RolloutWorker, env_id, env_kwargs, policy, relabel)
    return make_pool(factory, workers, backend)


def demo_pool(
    env_id: str,
    env_kwargs: dict[str, Any],
    expert: MLPExpert,
    workers: int = 1,
    learner: Policy | None = None,
    backend: Backend = LOCAL,
) -> Pool:
    """A pool of :class:`DemoWorker` (with ``learner``: DAgger's mixture rollouts)."""
    return make_pool(partial(DemoWorker, env_id, env_kwargs, expert, learner), workers, backend)


def run_episodes(
    env_id: str,
    env_kwargs: dict[str, Any],
    policy: Policy,
    tasks: Sequence[EpisodeTask],
    workers: int = 1,
    on_result: Callable[[EpisodeResult], None] | None = None,
    relabel: Relabeller | None = None,
    backend: Backend = LOCAL,
) -> list[EpisodeResult]:
    """Run ``tasks`` on a fresh rollout pool and return results in task order."""
    workers = min(workers, len(tasks))
    with rollout_pool(env_id, env_kwargs, policy, workers, relabel, backend) as pool:
        return pool.run(tasks, on_result)
