"""An MLflow run as a :class:`~pipeline.tracking.base.Tracker`: a local SQLite store (MLflow's
own default) or a tracking server; :func:`open_tracker` picks it or the null tracker."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.tracking.base import NullTracker, Tracker
from pipeline.tracking.keys import (
    MAX_PARAM_VALUE_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    METRICS_PER_BATCH,
    PARAMS_PER_BATCH,
    TRUNCATED_PARAMS_FILE,
    flatten_params,
    plain,
    sanitize_key,
    truncate,
)
from pipeline.tracking.pyfunc import (
    KERAS_FILE,
    LOADER_MODULE,
    as_model_inputs,
    check_loadable_layers,
    first_rows,
    pip_requirements,
)
from pipeline.tracking.store import (
    DEFAULT_EXPERIMENT,
    HTTP_SCHEMES,
    client_for,
    ensure_experiment,
    first_line,
    mlflow_module,
    uri_scheme,
    using_tracking_uri,
)

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure
    from mlflow import MlflowClient
log = logging.getLogger(__name__)


_HOST_TAG, _PID_TAG = "process.host", "process.pid"


def _process_tags() -> dict[str, str]:
    """Which process holds a run open, so that a later tracker can tell it was killed."""
    return {_HOST_TAG: socket.gethostname(), _PID_TAG: str(os.getpid())}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _end_abandoned_runs(client: MlflowClient, experiment_id: str) -> None:
    """Mark KILLED the runs of the experiment left RUNNING by a process of this machine that
    no longer exists: a SIGKILL or a power cut ends a process without ending its run. Runs
    of other machines and of live processes are left alone; ``--resume`` reopens a run."""
    host = socket.gethostname().replace("'", "")
    query = f"attributes.status = 'RUNNING' and tags.`{_HOST_TAG}` = '{host}'"
    try:
        runs = client.search_runs([experiment_id], filter_string=query, max_results=1000)
        for run in runs:
            pid = run.data.tags.get(_PID_TAG, "")
            if pid.isdigit() and not _process_alive(int(pid)):
                client.set_terminated(run.info.run_id, status="KILLED")
    except Exception as error:  # housekeeping must never keep a run from starting
        log.warning("could not check for abandoned MLflow runs: %s", first_line(error))


class MlflowTracker:
    """One MLflow run, open for the duration of a ``with`` block.

    The run ends FINISHED, FAILED on an exception, or KILLED on Ctrl-C; the exception
    itself always propagates. A run whose process was killed outright (tagged with its
    host and pid) is marked KILLED when the next tracker of its experiment starts.
    ``parent_run_id`` nests the run (a DAgger iteration or a search trial under its
    parent); ``resume_run_id`` reopens an earlier run instead of starting one, for
    ``--resume``.

    Setting up makes ``uri`` the process's MLflow tracking URI (MLflow's model logging and
    registry read the global one) and the run MLflow's active run in this thread, so code
    that calls ``mlflow.*`` directly inside the block lands in the same run. Leaving the
    block gives the process back the tracking URI it had before.
    """

    def __init__(
        self,
        uri: str,
        experiment: str = DEFAULT_EXPERIMENT,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        resume_run_id: str | None = None,
    ) -> None:
        self.uri = uri
        self.experiment = experiment
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.tags = {
            sanitize_key(key): truncate(str(value), MAX_TAG_VALUE_LENGTH)
            for key, value in (tags or {}).items()
        }
        self.resume_run_id = resume_run_id
        self._uri_scope = contextlib.ExitStack()
        self.experiment_id: str | None = None
        self.model_uri: str | None = None
        self._run_id: str | None = None
        self._client: MlflowClient | None = None
        self._truncated: dict[str, str] = {}

    # -- lifecycle

    @property
    def run_id(self) -> str | None:
        """The MLflow run id once the run has started."""
        return self._run_id

    @property
    def run_uri(self) -> str | None:
        """``runs:/<run_id>``, the base of artifact URIs in this run."""
        return f"runs:/{self._run_id}" if self._run_id else None

    def run_url(self) -> str | None:
        """The run's page in the tracking server's UI; ``None`` for local stores."""
        if self._run_id is None or uri_scheme(self.uri) not in HTTP_SCHEMES:
            return None
        base = self.uri.rstrip("/")
        return f"{base}/#/experiments/{self.experiment_id}/runs/{self._run_id}"

    def __enter__(self) -> MlflowTracker:
        self.experiment_id = ensure_experiment(self.uri, self.experiment)
        self._uri_scope.enter_context(using_tracking_uri(self.uri))
        try:
            return self._start()
        except BaseException:
            self._uri_scope.close()
            raise

    def _start(self) -> MlflowTracker:
        mlflow = mlflow_module()
        self._client = client_for(self.uri)
        _end_abandoned_runs(self._client, self.experiment_id)
        tags = {**self.tags, **_process_tags()}
        if self.resume_run_id is not None:
            try:
                run = mlflow.start_run(run_id=self.resume_run_id, nested=True)
            except mlflow.exceptions.MlflowException as error:
                raise PipelineError(
                    f"--tracking-uri {self.uri}: cannot reopen MLflow run {self.resume_run_id}"
                    f" to continue it: {first_line(error)}"
                ) from None
            self._run_id = run.info.run_id  # set_tags needs it
            self.set_tags(tags)
        else:
            run = mlflow.start_run(
                experiment_id=self.experiment_id,
                run_name=self.run_name,
                parent_run_id=self.parent_run_id,
                tags=tags,
                # A run started inside another tracker's block nests under it.
                nested=True,
            )
        self._run_id = run.info.run_id
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._end_run(exc_type, exc)
        finally:
            self._uri_scope.close()  # the process's tracking URI as before the block

    def _end_run(self, exc_type: type[BaseException] | None, exc: BaseException | None) -> None:
        if self._run_id is None:
            return
        if exc_type is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        mlflow = mlflow_module()
        try:
            active = mlflow.active_run()
            if active is not None and active.info.run_id == self._run_id:
                mlflow.end_run(status=status)
            else:  # ended from another thread or by direct mlflow calls
                self._require_client().set_terminated(self._run_id, status=status)
        except Exception as error:
            if exc_type is None:
                raise
            # Do not hide the error that ended the run behind a tracking error.
            log.warning("could not mark MLflow run %s as %s: %s", self._run_id, status, error)

    def _require_client(self) -> MlflowClient:
        if self._client is None or self._run_id is None:
            raise RuntimeError("MlflowTracker used outside its 'with' block")
        return self._client

    # -- values

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log a (nested) config as flat, dotted params.

        Values longer than MLflow's limit are cut with a marker; the full values go to the
        artifact ``params_truncated.json``.
        """
        from mlflow.entities import Param

        client = self._require_client()
        flat = {sanitize_key(key): value for key, value in flatten_params(params).items()}
        long_values = {k: v for k, v in flat.items() if len(v) > MAX_PARAM_VALUE_LENGTH}
        entities = [Param(k, truncate(v, MAX_PARAM_VALUE_LENGTH)) for k, v in flat.items()]
        for start in range(0, len(entities), PARAMS_PER_BATCH):
            client.log_batch(self._run_id, params=entities[start : start + PARAMS_PER_BATCH])
        if long_values:
            self._truncated.update(long_values)
            client.log_dict(self._run_id, self._truncated, TRUNCATED_PARAMS_FILE)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log metrics at ``step`` (the epoch); names like ``train/loss``, ``grad_norm/dense``.

        NaN and infinities are kept: a diverging loss is worth seeing in the run.
        """
        from mlflow.entities import Metric

        client = self._require_client()
        now = int(time.time() * 1000)
        entities = [
            Metric(sanitize_key(name), float(value), now, int(step))
            for name, value in metrics.items()
        ]
        for start in range(0, len(entities), METRICS_PER_BATCH):
            client.log_batch(self._run_id, metrics=entities[start : start + METRICS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values are strings, cut at MLflow's limit)."""
        from mlflow.entities import RunTag

        client = self._require_client()
        entities = [
            RunTag(sanitize_key(key), truncate(str(plain(value)), MAX_TAG_VALUE_LENGTH))
            for key, value in tags.items()
        ]
        for start in range(0, len(entities), PARAMS_PER_BATCH):
            client.log_batch(self._run_id, tags=entities[start : start + PARAMS_PER_BATCH])

    # -- files

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Log ``obj`` as JSON or YAML (by the extension of ``artifact_file``)."""
        self._require_client().log_dict(self._run_id, plain(obj), artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file, or a directory with its contents, under ``artifact_path``."""
        client = self._require_client()
        source = Path(path)
        if source.is_dir():
            target = "/".join(p for p in (artifact_path, source.name) if p)
            client.log_artifacts(self._run_id, str(source), artifact_path=target)
        elif source.is_file():
            client.log_artifact(self._run_id, str(source), artifact_path=artifact_path)
        else:
            raise FileNotFoundError(f"artifact to log does not exist: {source}")

    def log_figure(self, figure: Figure | str | Path, artifact_file: str) -> None:
        """Log a Matplotlib figure (saved as PNG or by the file's extension) or an image file."""
        client = self._require_client()
        if isinstance(figure, (str, Path)):
            self._log_file_as(Path(figure), artifact_file)
        else:
            client.log_figure(self._run_id, figure, artifact_file)

    def _log_file_as(self, source: Path, artifact_file: str) -> None:
        """Log ``source`` under the artifact name ``artifact_file`` (which may differ)."""
        if not source.is_file():
            raise FileNotFoundError(f"figure to log does not exist: {source}")
        directory, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="track-") as tmp:
            renamed = Path(tmp) / name
            shutil.copyfile(source, renamed)
            self._require_client().log_artifact(self._run_id, str(renamed), directory or None)

    # -- data and model

    def log_dataset_info(
        self, path: str | Path, digest: str, episodes: int, steps: int, context: str = "train"
    ) -> None:
        """Record which data trained the run, without reading it.

        Params ``dataset.path``, ``dataset.digest``, ``dataset.episodes``, ``dataset.steps``
        make runs comparable in the UI; an MLflow dataset input (metadata only) links the
        file to the run in MLflow's dataset view.
        """
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        source_path = Path(path).resolve()
        self.log_params(
            {
                "dataset": {
                    "path": str(source_path),
                    "digest": digest,
                    "episodes": int(episodes),
                    "steps": int(steps),
                }
            }
        )
        dataset = MetaDataset(
            source=_local_source(source_path),
            name=source_path.stem,
            # MLflow stores at most 36 characters of a dataset digest; the param has it all.
            digest=digest[:36],
        )
        tags = [
            InputTag("mlflow.data.context", context),
            InputTag("episodes", str(int(episodes))),
            InputTag("steps", str(int(steps))),
        ]
        entity = DatasetInput(dataset._to_mlflow_entity(), tags=tags)
        client = self._require_client()
        try:
            client.log_inputs(self._run_id, datasets=[entity])
        except Exception as exc:
            # Runs that log the same new dataset at once (tune's parallel trials) race to
            # insert its row; the loser's transaction is rolled back and a second try finds
            # the winner's row (measured: SQLite 'UNIQUE constraint failed: datasets...').
            if "UNIQUE constraint failed: datasets" not in str(exc):
                raise
            client.log_inputs(self._run_id, datasets=[entity])

    def log_keras_policy(
        self,
        model: keras.Model,
        example_obs: np.ndarray | dict[str, np.ndarray],
        artifact_path: str = "policy",
        registered_model_name: str | None = None,
        policy_dir: Path | None = None,
    ) -> str | None:
        """Log a Keras policy as an MLflow model; return its URI (``models:/<model_id>``).

        ``policy_dir``, a directory written by ``models.save_policy`` for ``model``, is
        stored whole as the model's data, so ``pipeline evaluate runs:/...`` gets the spec
        and config beside the weights.

        ``mlflow.pyfunc.load_model(uri).predict(obs)`` then maps raw observations
        ``(N, obs_dim)`` float32 (an image policy: a dict of its named inputs, frames as
        uint8) to raw actions in any process where this package is
        installed: the model's requirements name it (``humanoid-imitation==<version>``) beside
        MLflow, Keras, TensorFlow and NumPy, and its loader is
        :func:`pipeline.tracking.pyfunc._load_pyfunc`, which imports no module named by
        the artifacts and loads the ``.keras`` file with ``safe_mode=True``. So a model with
        layers defined outside Keras and this package's ``models`` is refused with
        ``ValueError``: no fresh process could rebuild it. ``registered_model_name`` also
        registers it (``models:/NAME/<version>``).
        """
        mlflow = mlflow_module()
        from mlflow.models import infer_signature

        client = self._require_client()
        obs = as_model_inputs(example_obs)
        for array in obs.values() if isinstance(obs, dict) else [obs]:
            if array.ndim < 2:
                raise ValueError(f"example_obs must be a batch (N, ...), got shape {array.shape}")
        check_loadable_layers(model)
        import keras

        actions = keras.ops.convert_to_numpy(model(obs, training=False))
        signature = infer_signature(obs, actions)
        with tempfile.TemporaryDirectory(prefix="track-policy-") as tmp:
            data_dir = Path(tmp) / "policy"
            if policy_dir is not None:
                shutil.copytree(policy_dir, data_dir)
            else:
                data_dir.mkdir()
                model.save(data_dir / KERAS_FILE)
            # Registering prints "Successfully registered model ..." straight to stderr;
            # the command reports the registration itself.
            with _mlflow_events_muted():
                info = mlflow.models.Model.log(
                    artifact_path=None,  # deprecated in MLflow 3 but still positional
                    name=artifact_path,
                    flavor=mlflow.pyfunc,
                    run_id=self._run_id,
                    loader_module=LOADER_MODULE,  # fixed in code, never read from an artifact
                    data_path=str(data_dir),
                    signature=signature,
                    input_example=first_rows(obs, 2),
                    pip_requirements=pip_requirements(),
                    registered_model_name=registered_model_name,
                )
        client.set_tag(self._run_id, f"model_uri.{sanitize_key(artifact_path)}", info.model_uri)
        self.model_uri = info.model_uri
        return info.model_uri


@contextlib.contextmanager
def _mlflow_events_muted() -> Iterator[None]:
    """Drop what MLflow writes to ``sys.stderr`` in a block (its ``eprint`` lines).

    MLflow's own ``disable_logging()`` left the registration lines of ``Model.log`` on the
    terminal (MLflow 3.17). Its errors are exceptions and still propagate.
    """
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def _local_source(path: Path) -> Any:
    """An MLflow dataset source pointing at a local file, without touching the file."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    # MLflow registers its local source under two schemes and warns that a path matches both.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return resolve_dataset_source(str(path))


def open_tracker(
    uri: str | None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    resume_run_id: str | None = None,
) -> Tracker:
    """An :class:`MlflowTracker` for ``uri``, or a :class:`NullTracker` when ``uri`` is None.

    Typical use: ``uri = None if no_track else prepare(cli_uri, experiment)``.
    """
    if uri is None:
        return NullTracker()
    return MlflowTracker(uri, experiment, run_name, parent_run_id, tags, resume_run_id)
