"""MLflow tracking: where runs go (:mod:`.store`), what MLflow accepts (:mod:`.keys`), the
trackers a run talks to (:mod:`.base`, :mod:`.mlflow_tracker`) and the pyfunc flavour of a
logged policy (:mod:`.pyfunc`). The names below are the package's public API."""

from pipeline.tracking.base import NullTracker, Tracker
from pipeline.tracking.keys import (
    MAX_KEY_LENGTH,
    MAX_PARAM_VALUE_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    TRUNCATED_PARAMS_FILE,
    flatten_params,
    run_name,
    sanitize_key,
)
from pipeline.tracking.mlflow_tracker import MlflowTracker, open_tracker

# Policies logged before the package was split name ``pipeline.tracking`` as their MLflow
# ``loader_module``; MLflow looks the hook up here, so it stays importable from here.
from pipeline.tracking.pyfunc import _load_pyfunc
from pipeline.tracking.store import (
    DEFAULT_EXPERIMENT,
    DEFAULT_TRACKING_URI,
    check_reachable,
    ensure_experiment,
    portable_uri,
    prepare,
    resolve_tracking_uri,
    sqlite_path,
    using_tracking_uri,
)

__all__ = [
    "DEFAULT_EXPERIMENT",
    "DEFAULT_TRACKING_URI",
    "MAX_KEY_LENGTH",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "TRUNCATED_PARAMS_FILE",
    "MlflowTracker",
    "NullTracker",
    "Tracker",
    "_load_pyfunc",
    "check_reachable",
    "ensure_experiment",
    "flatten_params",
    "open_tracker",
    "portable_uri",
    "prepare",
    "resolve_tracking_uri",
    "run_name",
    "sanitize_key",
    "sqlite_path",
    "using_tracking_uri",
]
