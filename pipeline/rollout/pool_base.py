"""What every rollout pool offers (local processes or Ray actors): results of tasks in
task order, streamed by ``imap`` or collected by ``run``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any


class Pool:
    """Long-lived workers that run tasks; subclasses provide ``imap`` and ``close``."""

    def imap(self, tasks: Iterable[Any], window: int | None = None) -> Iterator[Any]:
        """Results of ``tasks`` in task order, with at most ``window`` tasks in flight.

        ``tasks`` may be endless: tasks are taken from it only as results are consumed, so
        a caller can stop whenever it has enough (unfinished tasks are simply dropped).
        """
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

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

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
