"""What a run records (the :class:`Tracker` protocol) and :class:`NullTracker`, which
accepts every call and records nothing (``--no-track``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure


@runtime_checkable
class Tracker(Protocol):
    """What the training loop may record; see :class:`MlflowTracker` for the meaning."""

    @property
    def run_id(self) -> str | None: ...

    @property
    def run_uri(self) -> str | None: ...

    def run_url(self) -> str | None: ...

    def __enter__(self) -> Tracker: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def log_dict(self, obj: Any, artifact_file: str) -> None: ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...

    def log_figure(self, figure: Figure | str | Path, artifact_file: str) -> None: ...

    def log_dataset_info(
        self, path: str | Path, digest: str, episodes: int, steps: int, context: str = "train"
    ) -> None: ...

    def log_keras_policy(
        self,
        model: keras.Model,
        example_obs: np.ndarray | dict[str, np.ndarray],
        artifact_path: str = "policy",
        registered_model_name: str | None = None,
        policy_dir: Path | None = None,
    ) -> str | None: ...


class NullTracker:
    """``--no-track``: every call is accepted and nothing is recorded or written."""

    run_id: str | None = None
    run_uri: str | None = None
    model_uri: str | None = None

    def run_url(self) -> str | None:
        return None

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        return None

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        return None

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        return None

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        return None

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        return None

    def log_figure(self, figure: Figure | str | Path, artifact_file: str) -> None:
        return None

    def log_dataset_info(
        self, path: str | Path, digest: str, episodes: int, steps: int, context: str = "train"
    ) -> None:
        return None

    def log_keras_policy(
        self,
        model: keras.Model,
        example_obs: np.ndarray | dict[str, np.ndarray],
        artifact_path: str = "policy",
        registered_model_name: str | None = None,
        policy_dir: Path | None = None,
    ) -> str | None:
        return None
