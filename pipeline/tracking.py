"""MLflow tracking for training runs: where runs go, what is logged, and a no-op twin.

The training loop talks to a :class:`Tracker`: :class:`MlflowTracker` records a run in a
local SQLite store (MLflow's own default, ``sqlite:///mlflow.db``) or on a tracking server;
:class:`NullTracker` (``--no-track``) accepts the same calls and does nothing. Before any
work starts, :func:`prepare` resolves the URI, fails fast with one clear line when the
store is unusable, and creates the experiment in the calling process.

``mlflow`` is imported lazily: it costs seconds, and ``--no-track`` or ``--help`` should
not pay for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

# The product never talks to the network beyond the tracking server it was given; MLflow 3
# otherwise sends usage telemetry from any process that imports it. The variable is read
# when mlflow is imported and when its telemetry client is (re)created, so set it first.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
# MLflow prints emoji "View run ... at" lines for server runs; the CLI prints the run itself.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "humanoid-imitation"

# Limits of the installed MLflow (mlflow.utils.validation); kept here so the module does not
# import mlflow to know them. A test checks they still match.
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_KEY_LENGTH = 250
_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000
TRUNCATED_PARAMS_FILE = "params_truncated.json"
_TRUNCATED_MARKER = f"...[truncated; full value in {TRUNCATED_PARAMS_FILE}]"

# MLflow accepts only these characters in param, metric and tag keys (on POSIX).
_INVALID_KEY_CHARS = re.compile(r"[^/\w.\- :]")
_HTTP_SCHEMES = ("http", "https")

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- where runs go


def resolve_tracking_uri(cli_uri: str | None) -> str:
    """The tracking URI to use: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else SQLite.

    The default ``sqlite:///mlflow.db`` is relative to the current directory, as MLflow's.
    """
    for candidate in (cli_uri, os.environ.get("MLFLOW_TRACKING_URI")):
        if candidate and candidate.strip():
            return candidate.strip()
    return DEFAULT_TRACKING_URI


def _scheme(uri: str) -> str:
    """The URI scheme in lower case, ``""`` for a plain path (MLflow's file store)."""
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    # A Windows drive letter parses as a one-letter scheme; it is a path.
    return "" if len(scheme) == 1 else scheme


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite://`` URI, ``None`` for in-memory or other schemes."""
    if _scheme(uri) != "sqlite":
        return None
    rest = uri.split("://", 1)[1].split("?", 1)[0]
    # sqlite:///rel.db -> "/rel.db" (relative), sqlite:////abs.db -> "//abs.db" (absolute).
    if not rest.startswith("/") or rest in ("/", "/:memory:"):
        return None
    return Path(rest[1:])


def portable_uri(uri: str) -> str:
    """``uri`` with a relative SQLite path made absolute, so that it names the same store
    from any directory (``sqlite:///mlflow.db`` is relative to the current one)."""
    path = sqlite_path(uri)
    if path is None or path.is_absolute():
        return uri
    query = uri.partition("?")[2]
    return f"sqlite:///{path.resolve()}" + (f"?{query}" if query else "")


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail with one line if the tracking store cannot take a run, before any work starts.

    A server gets one short request to its ``/health`` endpoint (MLflow's own client would
    retry for minutes); a SQLite store needs an existing, writable directory. Other schemes
    (databases, Databricks, plugins) are left to MLflow, which :func:`ensure_experiment`
    turns into one line as well.
    """
    scheme = _scheme(uri)
    if scheme in _HTTP_SCHEMES:
        _check_server(uri, timeout_s)
    elif scheme == "sqlite":
        path = sqlite_path(uri)
        if path is not None:
            _check_writable_file(uri, path)
    elif scheme in ("", "file"):
        local = urllib.parse.urlparse(uri).path if scheme == "file" else uri
        _check_writable_dir(uri, Path(local))


def _check_server(uri: str, timeout_s: float) -> None:
    """One GET of ``<uri>/health``; any failure becomes a :class:`PipelineError`."""
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        reason = f"HTTP {error.code} from {url}"
    except urllib.error.URLError as error:
        reason = _describe_os_error(error.reason, timeout_s)
    except OSError as error:  # timeouts while reading, resets
        reason = _describe_os_error(error, timeout_s)
    else:
        if status == 200:
            return
        reason = f"HTTP {status} from {url}"
    raise PipelineError(
        f"--tracking-uri {uri}: MLflow server not reachable ({reason}); start it or use --no-track"
    )


def _describe_os_error(error: object, timeout_s: float) -> str:
    """A short reason for a failed connection: 'connection refused', 'timed out after 5 s'."""
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def _check_writable_file(uri: str, path: Path) -> None:
    """A SQLite file must be creatable (writable directory) or, if it exists, writable."""
    if path.exists():
        if path.is_dir():
            raise PipelineError(f"--tracking-uri {uri}: {path} is a directory, not a database")
        if not os.access(path, os.R_OK | os.W_OK):
            raise PipelineError(f"--tracking-uri {uri}: {path} is not writable")
        return
    _check_writable_dir(uri, path.parent if str(path.parent) else Path("."), must_exist=True)


def _check_writable_dir(uri: str, directory: Path, must_exist: bool = False) -> None:
    """``directory`` (or, for a store MLflow creates, its nearest existing parent) is writable."""
    probe = directory
    if not must_exist:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
    if not probe.is_dir():
        raise PipelineError(f"--tracking-uri {uri}: directory {probe} does not exist")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PipelineError(f"--tracking-uri {uri}: directory {probe} is not writable")


# INFO loggers of MLflow that narrate routine steps: creating or migrating a SQLite store,
# validating a model's input example, waiting for a registered model version.
_CHATTY_LOGGERS = (
    "mlflow.store.db.utils",
    "alembic",
    "alembic.runtime.migration",
    "mlflow.pyfunc",
    "mlflow.store.model_registry.abstract_store",
)


def _quiet_mlflow() -> None:
    """Silence MLflow's routine INFO chatter; its warnings and errors still show."""
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:  # leave loggers someone configured on purpose
            logger.setLevel(logging.WARNING)


@functools.cache
def _mlflow() -> Any:
    """Import mlflow once, quietly and without telemetry."""
    import mlflow

    _quiet_mlflow()
    # If something imported mlflow before this module set the variable, its telemetry
    # client is already running; re-creating it under the variable drops it.
    with contextlib.suppress(Exception):
        from mlflow.telemetry import set_telemetry_client

        set_telemetry_client()
    return mlflow


def _client(uri: str) -> MlflowClient:
    return _mlflow().MlflowClient(tracking_uri=uri)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a SQLite store live next to the database, not in the current directory.

    MLflow's default artifact root is ``./mlruns`` relative to wherever the experiment
    happens to be created; with ``--tracking-uri sqlite:////data/runs.db`` that would
    scatter artifacts over working directories.
    """
    path = sqlite_path(uri)
    if path is None:
        return None
    slug = re.sub(r"[^\w.\-]+", "_", experiment).strip("._") or "experiment"
    return (path.resolve().parent / "mlruns" / slug).as_uri()


def ensure_experiment(uri: str, name: str) -> str:
    """Create the store (for SQLite, the database) and the experiment; return its id.

    Call this in the parent process before starting workers: several processes creating a
    fresh SQLite database at once fail (``duplicate column name: step``).
    """
    mlflow = _mlflow()
    try:
        client = _client(uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(name, _artifact_location(uri, name))
            except mlflow.exceptions.MlflowException as error:
                # Another process created it between our look-up and create.
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
    except PipelineError:
        raise
    except Exception as error:  # SQLAlchemy, HTTP and MLflow errors alike
        reason = _first_line(error)
        if "migration" in reason.lower() or "duplicate column" in reason.lower():
            reason += " (did several processes create this SQLite store at once?)"
        raise PipelineError(
            f"--tracking-uri {uri}: cannot open experiment {name!r}: {reason}"
        ) from error
    if experiment.lifecycle_stage == "deleted":
        raise PipelineError(
            f"--tracking-uri {uri}: experiment {name!r} is deleted; restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) "
            "or choose another experiment name"
        )
    return str(experiment.experiment_id)


def prepare(cli_uri: str | None, experiment: str = DEFAULT_EXPERIMENT) -> str:
    """Resolve the URI, check the store and create the experiment: all before training."""
    uri = resolve_tracking_uri(cli_uri)
    check_reachable(uri)
    ensure_experiment(uri, experiment)
    return uri


# --------------------------------------------------------------------------- what is logged


def _plain(value: Any) -> Any:
    """``value`` as JSON/YAML-safe Python: NumPy scalars and arrays, paths, dataclasses."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif hasattr(value, "model_dump"):  # pydantic
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def run_name(stage: str, env_id: str, *parts: str, when: datetime | None = None) -> str:
    """A run name that tells runs apart in the UI: stage, environment, what ran and the UTC
    start, e.g. ``train HumanoidWalk mlp seed0 2026-12-02 01:23``."""
    env = re.sub(r"-v\d+$", "", env_id.rsplit("/", 1)[-1])
    stamp = (when or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M")
    return " ".join([stage, env, *parts, stamp])


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config dicts as ``{"optimizer.lr": "0.001", "layers": "[256, 256]"}``.

    Lists stay one value (JSON) so a layer list reads as one setting, not one per layer.
    """
    flat: dict[str, str] = {}
    for key, value in _plain(params).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, prefix=f"{name}."))
        elif isinstance(value, (str, bool, int, float)) or value is None:
            flat[name] = str(value)
        else:
            flat[name] = json.dumps(value)
    return flat


def sanitize_key(key: str) -> str:
    """A key MLflow accepts: allowed characters only, no empty or ``..`` path segments."""
    cleaned = _INVALID_KEY_CHARS.sub("_", str(key))
    parts = [part if part not in (".", "..") else "_" for part in cleaned.split("/") if part]
    return "/".join(parts)[:MAX_KEY_LENGTH] or "_"


def _truncate(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, ending in a marker that says so."""
    if len(value) <= limit:
        return value
    return value[: limit - len(_TRUNCATED_MARKER)] + _TRUNCATED_MARKER


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
        example_obs: np.ndarray,
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
        example_obs: np.ndarray,
        artifact_path: str = "policy",
        registered_model_name: str | None = None,
        policy_dir: Path | None = None,
    ) -> str | None:
        return None


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
        log.warning("could not check for abandoned MLflow runs: %s", _first_line(error))


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
    that calls ``mlflow.*`` directly inside the block lands in the same run.
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
            sanitize_key(key): _truncate(str(value), MAX_TAG_VALUE_LENGTH)
            for key, value in (tags or {}).items()
        }
        self.resume_run_id = resume_run_id
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
        if self._run_id is None or _scheme(self.uri) not in _HTTP_SCHEMES:
            return None
        base = self.uri.rstrip("/")
        return f"{base}/#/experiments/{self.experiment_id}/runs/{self._run_id}"

    def __enter__(self) -> MlflowTracker:
        mlflow = _mlflow()
        self.experiment_id = ensure_experiment(self.uri, self.experiment)
        mlflow.set_tracking_uri(self.uri)
        self._client = _client(self.uri)
        _end_abandoned_runs(self._client, self.experiment_id)
        tags = {**self.tags, **_process_tags()}
        if self.resume_run_id is not None:
            try:
                run = mlflow.start_run(run_id=self.resume_run_id, nested=True)
            except mlflow.exceptions.MlflowException as error:
                raise PipelineError(
                    f"--tracking-uri {self.uri}: cannot reopen MLflow run {self.resume_run_id}"
                    f" to continue it: {_first_line(error)}"
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
        if self._run_id is None:
            return
        if exc_type is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        mlflow = _mlflow()
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
        entities = [Param(k, _truncate(v, MAX_PARAM_VALUE_LENGTH)) for k, v in flat.items()]
        for start in range(0, len(entities), _PARAMS_PER_BATCH):
            client.log_batch(self._run_id, params=entities[start : start + _PARAMS_PER_BATCH])
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
        for start in range(0, len(entities), _METRICS_PER_BATCH):
            client.log_batch(self._run_id, metrics=entities[start : start + _METRICS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values are strings, cut at MLflow's limit)."""
        from mlflow.entities import RunTag

        client = self._require_client()
        entities = [
            RunTag(sanitize_key(key), _truncate(str(_plain(value)), MAX_TAG_VALUE_LENGTH))
            for key, value in tags.items()
        ]
        for start in range(0, len(entities), _PARAMS_PER_BATCH):
            client.log_batch(self._run_id, tags=entities[start : start + _PARAMS_PER_BATCH])

    # -- files

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Log ``obj`` as JSON or YAML (by the extension of ``artifact_file``)."""
        self._require_client().log_dict(self._run_id, _plain(obj), artifact_file)

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
        self._require_client().log_inputs(self._run_id, datasets=[entity])

    def log_keras_policy(
        self,
        model: keras.Model,
        example_obs: np.ndarray,
        artifact_path: str = "policy",
        registered_model_name: str | None = None,
        policy_dir: Path | None = None,
    ) -> str | None:
        """Log a Keras policy as an MLflow model; return its URI (``models:/<model_id>``).

        ``policy_dir``, a directory written by ``models.save_policy`` for ``model``, is
        stored whole as the model's data, so ``pipeline evaluate runs:/...`` gets the spec
        and config beside the weights.

        ``mlflow.pyfunc.load_model(uri).predict(obs)`` then maps raw observations
        ``(N, obs_dim)`` float32 to raw actions in any process where this package is
        installed: the model's requirements name it (``humanoid-imitation==<version>``) beside
        MLflow, Keras, TensorFlow and NumPy, and its loader is this module's
        :func:`_load_pyfunc`, which imports no module named by the artifacts and loads the
        ``.keras`` file with ``safe_mode=True``. So a model with layers defined outside Keras
        and this package's ``models`` is refused with ``ValueError``: no fresh process could
        rebuild it. ``registered_model_name`` also registers it (``models:/NAME/<version>``).
        """
        mlflow = _mlflow()
        from mlflow.models import infer_signature

        client = self._require_client()
        obs = np.asarray(example_obs, dtype=np.float32)
        if obs.ndim < 2:
            raise ValueError(f"example_obs must be a batch (N, ...), got shape {obs.shape}")
        _check_loadable_layers(model)
        import keras

        actions = keras.ops.convert_to_numpy(model(obs, training=False))
        signature = infer_signature(obs, actions)
        with tempfile.TemporaryDirectory(prefix="track-policy-") as tmp:
            data_dir = Path(tmp) / "policy"
            if policy_dir is not None:
                shutil.copytree(policy_dir, data_dir)
            else:
                data_dir.mkdir()
                model.save(data_dir / _KERAS_FILE)
            # Registering prints "Successfully registered model ..." straight to stderr;
            # the command reports the registration itself.
            with _mlflow_events_muted():
                info = mlflow.models.Model.log(
                    artifact_path=None,  # deprecated in MLflow 3 but still positional
                    name=artifact_path,
                    flavor=mlflow.pyfunc,
                    run_id=self._run_id,
                    loader_module=__name__,  # fixed here, never read from an artifact
                    data_path=str(data_dir),
                    signature=signature,
                    input_example=obs[:2],
                    pip_requirements=_pip_requirements(),
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


# --------------------------------------------------------------------------- policy loader

_KERAS_FILE = "policy.keras"
# This project's distribution: it holds the loader (``loader_module``) and ``models``.
DISTRIBUTION = "humanoid-imitation"
# Packages whose layers a fresh process can rebuild: Keras' own and this package's models
# (imported by the loader), never a module an artifact names.
_LOADABLE_LAYER_PACKAGES = ("keras", "tensorflow", "tf_keras", "models")


def _check_loadable_layers(model: keras.Model) -> None:
    """Refuse a model with a layer defined outside :data:`_LOADABLE_LAYER_PACKAGES`."""
    pending: list[Any] = [model]
    while pending:
        layer = pending.pop()
        module = type(layer).__module__
        if module.split(".")[0] not in _LOADABLE_LAYER_PACKAGES:
            raise ValueError(
                f"cannot log policy: layer {layer.name!r} ({type(layer).__name__} from {module}) "
                "is defined outside Keras and this package's models, so the logged model "
                "could not be loaded elsewhere; define it in models/"
            )
        pending.extend(getattr(layer, "layers", []))


def _pip_requirements() -> list[str]:
    """Requirements of the logged model, pinned to this environment: this package (the
    loader lives in it) and the libraries that compute its actions. Given so MLflow need
    not infer them (its inference loads the model in a subprocess, seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    requirements = []
    for package in (DISTRIBUTION, "mlflow", "keras", "tensorflow", "numpy"):
        try:
            requirements.append(f"{package}=={version(package)}")
        except PackageNotFoundError:  # e.g. run from a source tree: still name it
            requirements.append(package)
    return requirements


class _KerasPolicy:
    """What ``mlflow.pyfunc`` wraps: a Keras policy called directly, batch by batch."""

    _BATCH = 8192

    def __init__(self, model: keras.Model) -> None:
        import keras

        self.model = model
        self._to_numpy = keras.ops.convert_to_numpy

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> np.ndarray:
        """Raw actions ``(N, act_dim)`` for raw observations ``(N, obs_dim)``."""
        obs = np.asarray(getattr(model_input, "values", model_input), dtype=np.float32)
        # A direct call is ~10x faster than model.predict for the small batches of rollouts.
        chunks = [
            self._to_numpy(self.model(obs[start : start + self._BATCH], training=False))
            for start in range(0, len(obs), self._BATCH)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0,), dtype=np.float32)


def _load_pyfunc(data_path: str) -> _KerasPolicy:
    """MLflow's loader hook (``loader_module``) for policies logged by ``log_keras_policy``.

    The code it runs is fixed here: a policy directory goes through ``models.load_policy``
    (checksums, safe mode), a bare ``.keras`` file through Keras with ``safe_mode=True``.
    Nothing in the artifacts decides what is imported.
    """
    import keras

    from models.saving import is_policy_directory, load_policy

    data = Path(data_path)
    if is_policy_directory(data):
        return _KerasPolicy(load_policy(data).model)
    model = keras.saving.load_model(data / _KERAS_FILE, compile=False, safe_mode=True)
    return _KerasPolicy(model)


# --------------------------------------------------------------------------- convenience


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
