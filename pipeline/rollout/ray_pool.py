"""The rollout pool on a Ray cluster: the same workers as the local pool, as Ray actors.

Each actor builds its worker once (environment, policy) and keeps it for every task, as a
local worker process does. When an actor dies (its process killed, its node lost) the pool
starts a new one and gives it the episodes the dead one held; an episode is a function of
its task, so a retried one gives the same result, and each task's result is taken once, so
nothing is counted twice. The pool restarts actors itself rather than through Ray's
``max_restarts``, which warns on every actor whose constructor arguments (here the policy
and expert weights) sit in the object store.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.rollout.cluster import Backend, ray_connection
from pipeline.rollout.pool_base import Pool

RESTARTS = 3
"""Dead actors the pool replaces before it gives up (over its whole life)."""


class _RayWorker:
    """The actor: one worker built by ``factory`` in the actor's process."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.worker = factory()

    def run(self, task: Any) -> Any:
        return self.worker.run(task)


class RayWorkerPool(Pool):
    """``workers`` actors on the cluster, in place of the local ``WorkerPool``."""

    def __init__(self, factory: Callable[[], Any], workers: int, backend: Backend,
                 thread_env: dict[str, str]) -> None:  # fmt: skip
        """``thread_env``: variables of every actor's process (its BLAS/TF thread limits)."""
        import ray

        self.workers = max(1, workers)
        self.restarts = 0
        self._connection = ray_connection(backend)
        self._connection.__enter__()
        options = {"num_cpus": 1, "max_restarts": 0, "runtime_env": {"env_vars": dict(thread_env)}}
        self._actor_class = ray.remote(**options)(_RayWorker)
        # In the object store once, shared by every actor (and by replacements).
        self._factory = ray.put(factory)
        self._actors = [self._actor_class.remote(self._factory) for _ in range(self.workers)]

    def imap(self, tasks: Iterable[Any], window: int | None = None) -> Iterator[Any]:
        """Results in task order, at most ``window`` tasks in flight, each given to the
        actor with the fewest; ``tasks`` may be endless (taken as results are consumed)."""
        window = window or 2 * self.workers
        load = [0] * len(self._actors)
        pending: deque[list[Any]] = deque()  # [result ref, actor index, task]
        source = iter(tasks)

        def submit() -> bool:
            task = next(source, _END)
            if task is _END:
                return False
            index = min(range(len(load)), key=load.__getitem__)
            load[index] += 1
            pending.append([self._actors[index].run.remote(task), index, task])
            return True

        while len(pending) < window and submit():
            pass
        while pending:
            entry = pending[0]
            if not self._finished(entry, pending):
                continue
            pending.popleft()
            load[entry[1]] -= 1
            result = entry[0]
            submit()
            yield result

    def _finished(self, entry: list[Any], pending: deque[list[Any]]) -> bool:
        """Wait for ``entry``'s result (stored in place of its ref); False when its actor
        died and its episodes went to a new actor."""
        import ray
        from ray.exceptions import RayActorError

        try:
            entry[0] = ray.get(entry[0])
            return True
        except RayActorError as error:
            self._replace(entry[1], error)
        for other in pending:
            if other[1] == entry[1]:
                other[0] = self._actors[entry[1]].run.remote(other[2])
        return False

    def _replace(self, index: int, error: BaseException) -> None:
        import ray

        self.restarts += 1
        if self.restarts > RESTARTS:
            text = str(error).strip()
            reason = text.splitlines()[0] if text else type(error).__name__
            raise PipelineError(f"--backend ray: {self.restarts} workers died, giving up "
                                f"({reason})")  # fmt: skip
        ray.kill(self._actors[index], no_restart=True)
        self._actors[index] = self._actor_class.remote(self._factory)

    def close(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []
        self._factory = None
        self._connection.__exit__(None, None, None)


_END = object()
