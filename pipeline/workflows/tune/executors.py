"""Where trials run: a fresh local process per trial (the default) or a Ray task per trial
on a cluster. Either way a trial never shares a process with another: TensorFlow and
MLflow keep process-wide state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

from pipeline.rollout.cluster import Backend, ray_connection
from pipeline.workflows.tune.trial import TrialResult, TrialTask, run_trial

Outcome = tuple[TrialTask, TrialResult | BaseException]
"""A finished trial: its task and its result, or the exception it raised."""


def run_trials(tasks: Sequence[TrialTask], workers: int, backend: Backend) -> Iterator[Outcome]:
    """Run ``tasks``, ``workers`` at a time, yielding each as it finishes."""
    if backend.is_ray:
        yield from _on_ray(tasks, workers, backend)
        return
    # max_tasks_per_child=1: nothing of one trial's process-wide state reaches the next.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             max_tasks_per_child=1) as pool:  # fmt: skip
        futures = {pool.submit(run_trial, task): task for task in tasks}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as exc:  # a trial that crashes fails alone
                yield futures[future], exc


def _on_ray(tasks: Sequence[TrialTask], workers: int, backend: Backend) -> Iterator[Outcome]:
    """One Ray task per trial in a worker process used once (``max_calls=1``), asking for
    as many CPUs as the trial's TensorFlow threads; at most ``workers`` in flight."""
    import ray

    with ray_connection(backend):
        queue = list(tasks)
        running: dict[object, TrialTask] = {}
        remotes: dict[int, Any] = {}  # one remote function per thread count
        while queue or running:
            while queue and len(running) < workers:
                task = queue.pop(0)
                if task.threads not in remotes:
                    remotes[task.threads] = ray.remote(
                        num_cpus=task.threads, max_calls=1, max_retries=0,
                        runtime_env={"env_vars": thread_env(task.threads)},
                    )(run_trial)  # fmt: skip
                running[remotes[task.threads].remote(task)] = task
            (ready,), _ = ray.wait(list(running), num_returns=1)
            task = running.pop(ready)
            try:
                yield task, ray.get(ready)
            except Exception as exc:  # a trial that crashes (or whose node dies) fails alone
                yield task, exc


def thread_env(threads: int) -> dict[str, str]:
    """BLAS and TensorFlow thread limits of a trial's process."""
    return {key: str(threads) for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                         "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                         "TF_NUM_INTEROP_THREADS")}  # fmt: skip
