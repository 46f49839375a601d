"""Where MLflow runs go: resolving and checking the tracking URI, and creating the
experiment before any work starts.

``mlflow`` is imported lazily (:func:`mlflow_module`): it costs seconds, and
``--no-track`` or ``--help`` should not pay for it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import PipelineError

if TYPE_CHECKING:
    from mlflow import MlflowClient


# The product never talks to the network beyond the tracking server it was given; MLflow 3
# otherwise sends usage telemetry from any process that imports it. The variable is read
# when mlflow is imported and when its telemetry client is (re)created, so set it first.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
# MLflow prints emoji "View run ... at" lines for server runs; the CLI prints the run itself.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "humanoid-imitation"
HTTP_SCHEMES = ("http", "https")

log = logging.getLogger(__name__)


def resolve_tracking_uri(cli_uri: str | None) -> str:
    """The tracking URI to use: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else SQLite.

    The default ``sqlite:///mlflow.db`` is relative to the current directory, as MLflow's.
    """
    for candidate in (cli_uri, os.environ.get("MLFLOW_TRACKING_URI")):
        if candidate and candidate.strip():
            return candidate.strip()
    return DEFAULT_TRACKING_URI


def uri_scheme(uri: str) -> str:
    """The URI scheme in lower case, ``""`` for a plain path (MLflow's file store)."""
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    # A Windows drive letter parses as a one-letter scheme; it is a path.
    return "" if len(scheme) == 1 else scheme


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite://`` URI, ``None`` for in-memory or other schemes."""
    if uri_scheme(uri) != "sqlite":
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
    scheme = uri_scheme(uri)
    if scheme in HTTP_SCHEMES:
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
def mlflow_module() -> Any:
    """Import mlflow once, quietly and without telemetry."""
    import mlflow

    _quiet_mlflow()
    # If something imported mlflow before this module set the variable, its telemetry
    # client is already running; re-creating it under the variable drops it.
    with contextlib.suppress(Exception):
        from mlflow.telemetry import set_telemetry_client

        set_telemetry_client()
    return mlflow


def client_for(uri: str) -> MlflowClient:
    return mlflow_module().MlflowClient(tracking_uri=uri)


def first_line(error: BaseException) -> str:
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
    mlflow = mlflow_module()
    try:
        client = client_for(uri)
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
        reason = first_line(error)
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


def _global_tracking_uri() -> tuple[str | None, str | None]:
    """MLflow's process-wide tracking URI as set by ``mlflow.set_tracking_uri`` (None when
    never set) and the ``MLFLOW_TRACKING_URI`` variable, which that call also sets.

    ``mlflow.get_tracking_uri()`` would answer with a default where nothing was set, and
    setting that default would change what the process had."""
    from mlflow.tracking._tracking_service import utils

    return getattr(utils, "_tracking_uri", None), os.environ.get("MLFLOW_TRACKING_URI")


@contextlib.contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """Make ``uri`` MLflow's process-wide tracking URI for the block, then give the process
    back the one it had. MLflow's model logging, registry and artifact downloads read the
    global URI, even where a call is given another."""
    previous, environment = _global_tracking_uri()
    mlflow = mlflow_module()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # None also clears the variable
        if environment is not None:
            os.environ["MLFLOW_TRACKING_URI"] = environment
