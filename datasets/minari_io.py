"""Interchange with Minari, the gymnasium ecosystem's offline dataset standard.

:func:`export_minari` turns one of our demonstration files into a Minari dataset (HDF5
data format) under a Minari datasets root, so ``MINARI_DATASETS_PATH=<root>`` and
``minari.load_dataset(<id>)`` (or ``minari.MinariDataset(<root>/<id>/data)``) read it.
:func:`import_minari` reads a Minari dataset with Minari's own loader and writes one of
our files with :class:`~datasets.writer.EpisodeWriter`. Both stream episode by episode.

What maps where (our file -> Minari)::

    episode arrays  observations (T+1), actions (T, the clean expert labels), rewards,
                    terminations, truncations -> the same Minari episode arrays, same dtypes
    executed_actions (DART noise)  -> infos/executed_actions
    infos/<key> (T rows)           -> infos/<key> (T+1 rows: Minari's row 0 is the reset
                                      info, which our files do not keep; it is NaN, or 0
                                      for integer/bool arrays)
    episode attrs   seed -> Minari's episode ``seed``; id, attempt, session, return, fell,
                    distance, checksum -> ``humanoid_imitation/<name>`` episode attributes
                    (Minari's episode metadata returns them as a nested dict)
    file attrs      env id + env kwargs -> ``env_spec`` (the registered spec, kwargs merged);
                    spaces -> ``observation_space``/``action_space``; expert and noise ->
                    ``algorithm_name``; everything (schema version, env kwargs, expert, noise,
                    recording args, sessions, dropped attempts, package versions, exact
                    spaces, compression) -> the ``humanoid_imitation`` metadata entry

An export of ours imports back to the same arrays, seeds, attempts, dropped attempts and
file metadata (checksums match). A foreign dataset needs Box observation and action
spaces; its env id comes from its ``env_spec`` (else ``minari:<dataset id>``), its seeds
from the episodes' ``seed`` (else -1), and numeric infos of T+1 rows lose the reset row.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import replace
from importlib import metadata as importlib_metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from datasets import journal
from datasets.checks import (
    location_problem,
    make_directories,
    remove_directories,
)
from datasets.errors import DatasetError, DatasetExistsError, first_line
from datasets.reader import Dataset, EpisodeView, open_dataset, validate
from datasets.schema import (
    EXECUTED_ACTIONS,
    FORMAT_NAME,
    DatasetMetadata,
    Episode,
    EpisodeInfo,
    SpaceSpec,
    utc_now,
)
from datasets.writer import EpisodeWriter

EXPORT_FORMAT = "humanoid-imitation/minari-export"
"""Value of ``metadata["humanoid_imitation"]["format"]``: marks a dataset as our export."""
EXPORT_VERSION = 1
"""Bumped when the mapping above changes in a way an older importer would misread."""
METADATA_KEY = "humanoid_imitation"
"""Key of our entry in Minari's dataset metadata and prefix of our episode attributes."""
EXECUTED_ACTIONS_INFO = "executed_actions"
"""Info key that carries the executed (noisy) actions, which Minari has no place for."""
UNKNOWN_SEED = -1
"""Seed stored for imported episodes whose Minari episode has none."""

_EPISODE_ATTRS = ("id", "attempt", "session", "return", "fell", "distance", "checksum")
_MINARI_SPEC = "minari[hdf5]>=0.5.4,<0.6"


class MinariError(DatasetError):
    """A Minari export or import failed; the message names the path and the problem."""


class MinariExistsError(MinariError, DatasetExistsError):
    """The output exists and overwriting was not asked for."""


class MinariSpaceError(MinariError):
    """The Minari dataset has a space our files cannot hold (only Box spaces can)."""


# --------------------------------------------------------------------------- helpers
def _minari() -> ModuleType:
    # Imported lazily: minari pulls in typer/rich, and only interchange needs it.
    try:
        import minari
    except ImportError as exc:
        raise MinariError(
            f"minari is not installed ({first_line(exc)}); pip install '{_MINARI_SPEC}'"
        ) from None
    return minari


def _words(name: str) -> list[str]:
    """Lower-case words of a CamelCase name: ``HumanoidWalk`` -> ``["humanoid", "walk"]``."""
    return [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)]


def _token(text: str) -> str:
    """Text reduced to characters a Minari id part allows (``0.005`` -> ``0p005``)."""
    text = text.replace(".", "p").replace("-", "m")
    return re.sub(r"[^\w]+", "_", text).strip("_") or "x"


def default_dataset_id(meta: DatasetMetadata) -> str:
    """A Minari id following its ``namespace/env/dataset-vN`` convention.

    ``sim/HumanoidWalk-v0`` with an expert and no noise gives ``humanoid/walk/expert-v0``;
    with ``--noise 0.005`` it gives ``humanoid/walk/expert-noise0p005-v0``.
    """
    name = re.sub(r"-v\d+$", "", meta.env_id.rsplit("/", 1)[-1])
    words = _words(name) or [_token(name.lower())]
    path = [words[0], "_".join(words[1:])] if len(words) > 1 else words
    kind = "expert" if meta.expert_id else "demos"
    if meta.noise_scale:
        kind += f"-noise{_token(f'{meta.noise_scale:g}')}"
    return "/".join([*path, f"{kind}-v0"])


def _check_dataset_id(dataset_id: str, where: Path) -> None:
    from minari.dataset.minari_dataset import DATASET_ID_RE

    match = DATASET_ID_RE.fullmatch(dataset_id)
    if match is None or match.group("version") is None or "//" in dataset_id:
        raise MinariError(
            f"{where}: invalid Minari dataset id {dataset_id!r} "
            "(use (namespace/)name-v<version>, letters, digits, '-', '_')"
        )


def _box(spec: SpaceSpec) -> Any:
    from gymnasium.spaces import Box

    # Bounds in the space's own dtype: they came from it, so the cast is exact (and gymnasium
    # warns about float64 bounds on a float32 Box).
    dtype = np.dtype(spec.dtype)
    low = np.asarray(spec.low, dtype=dtype).reshape(spec.shape)
    high = np.asarray(spec.high, dtype=dtype).reshape(spec.shape)
    return Box(low=low, high=high, shape=spec.shape, dtype=dtype)


def _env_spec(meta: DatasetMetadata) -> Any | None:
    """The registered spec of the file's env with its kwargs, or None if not serialisable."""
    import gymnasium as gym

    if meta.env_id.startswith("sim/"):
        import sim  # noqa: F401  (registers the sim/... ids)
    try:
        spec = gym.spec(meta.env_id)
    except gym.error.Error:
        return None  # not registered here (e.g. a file imported from a foreign dataset)
    spec = replace(spec, kwargs={**spec.kwargs, **meta.env_kwargs})
    try:
        spec.to_json()
    except (TypeError, ValueError):  # a callable in the kwargs; Minari could not load it
        return None
    return spec


def _requirements(env_spec: Any | None, meta: DatasetMetadata) -> list[str]:
    """What ``MinariDataset.recover_environment`` should check is installed."""
    if env_spec is None or not str(env_spec.entry_point).startswith("sim."):
        return []
    requirements = ["humanoid-imitation"]
    pybullet = meta.package_versions.get("pybullet", "")
    if re.fullmatch(r"[\w.+!-]+", pybullet) and pybullet != "not installed":
        # The simulation's results depend on the pybullet build; Minari warns on a mismatch.
        requirements.append(f"pybullet=={pybullet}")
    return requirements


def _package_version(name: str) -> str:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


def _with_reset_row(array: np.ndarray) -> np.ndarray:
    # Minari's infos have T+1 rows (row 0 comes from reset); ours have T. NaN says "unknown".
    fill = np.nan if array.dtype.kind in "fc" else 0
    head = np.full((1, *array.shape[1:]), fill, dtype=array.dtype)
    return np.concatenate([head, array])


# ---------------------------------------------------------------------------- export
def _algorithm_name(meta: DatasetMetadata) -> str | None:
    if not meta.expert_id:
        return None
    noise = f" with DART noise {meta.noise_scale:g}" if meta.noise_scale else ""
    return f"expert {meta.expert_id}{noise}"


def _description(meta: DatasetMetadata, source: Path, ds: Dataset, executed: bool) -> str:
    kwargs = json.dumps(meta.env_kwargs, sort_keys=True)
    by = f"the {meta.expert_id} expert" if meta.expert_id else "an unnamed policy"
    noise = f", executing actions with DART noise {meta.noise_scale:g}" if meta.noise_scale else ""
    text = (
        f"Demonstrations of {by} on {meta.env_id} (kwargs {kwargs}){noise}; "
        f"{len(ds)} episodes exported from {source.name} by humanoid-imitation. "
        "'actions' are the clean expert action labels"
    )
    if executed:
        text += f"; the actions applied to the simulation are in infos['{EXECUTED_ACTIONS_INFO}']"
    return text + (
        ". Row 0 of every info array stands for the reset, which the source does not "
        "record (NaN, or 0 for integer arrays). Terminations are falls, truncations time limits."
    )


def _our_metadata(meta: DatasetMetadata, source: Path, ds: Dataset, executed: bool) -> dict:
    return {
        "format": EXPORT_FORMAT,
        "export_version": EXPORT_VERSION,
        "exported": utc_now(),
        "exported_with": {
            "humanoid-imitation": _package_version("humanoid-imitation"),
            "minari": _package_version("minari"),
        },
        "source_file": source.name,
        "source_format": FORMAT_NAME,
        "schema_version": meta.schema_version,
        "dataset_uuid": meta.dataset_uuid,
        "created": meta.created,
        "env_id": meta.env_id,
        "env_kwargs": meta.env_kwargs,
        "expert_id": meta.expert_id,
        "noise_scale": meta.noise_scale,
        "recording_args": meta.recording_args,
        "package_versions": meta.package_versions,
        "compression": meta.compression,
        # Our JSON keeps the exact bounds (and their dtype-independent float64 values).
        "observation_space": meta.observation_space.to_json(),
        "action_space": meta.action_space.to_json(),
        "actions": "clean expert labels",
        "executed_actions_info": EXECUTED_ACTIONS_INFO if executed else None,
        "infos_reset_row": "placeholder (NaN, or 0 for integer/bool arrays)",
        "next_attempt": ds.next_attempt,
        "dropped_attempts": [
            {"attempt": d.attempt, "seed": d.seed, "reason": d.reason} for d in ds.dropped_attempts
        ],
        "sessions": ds.sessions,
    }


def _episode_attrs(info: EpisodeInfo) -> dict[str, Any]:
    values = {
        "id": info.id,
        "attempt": info.attempt,
        "session": info.session,
        "return": info.episode_return,
        "fell": info.fell,
        "distance": info.distance,
        "checksum": info.checksum,
    }
    # Minari's episode metadata unflattens "a/b" attribute names into nested dicts.
    return {f"{METADATA_KEY}/{key}": value for key, value in values.items()}


def _has_executed(view: EpisodeView) -> bool:
    try:
        view.dataset(EXECUTED_ACTIONS)  # a lookup only; no array data is read
    except KeyError:
        return False
    return True


def _export_infos(view: EpisodeView, where: str) -> dict[str, np.ndarray]:
    infos = {key: _with_reset_row(view.infos(key)) for key in view.info_keys()}
    executed = view.executed_actions
    if executed is not None:
        if EXECUTED_ACTIONS_INFO in infos:
            raise MinariError(
                f"{where}: episode {view.id} has an info named {EXECUTED_ACTIONS_INFO!r}, "
                "which the export needs for the executed actions"
            )
        infos[EXECUTED_ACTIONS_INFO] = _with_reset_row(executed)
    return infos


def _check_out_dir(root: Path, target: Path) -> None:
    """Refuse a root that cannot hold ``target`` before anything is created."""
    if root.exists() and not root.is_dir():
        raise MinariError(f"{root}: is not a directory")
    problem = location_problem(target)
    if problem:
        raise MinariError(f"{target}: {problem}")


def _write_namespace_metadata(root: Path, dataset_id: str) -> None:
    # Minari lists a namespace only where a namespace_metadata.json exists; it writes an
    # empty one for each level when it creates a dataset, and so do we (never clobbering).
    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        path = root.joinpath(*parts[:depth], "namespace_metadata.json")
        if not path.exists():
            path.write_text("{}")


def export_minari(
    h5_path: str | Path,
    out_dir: str | Path,
    dataset_id: str | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write the demonstration file ``h5_path`` as a Minari dataset under ``out_dir``.

    ``out_dir`` is a Minari datasets root (what ``MINARI_DATASETS_PATH`` points at; it and
    missing parents are created). ``dataset_id`` defaults to :func:`default_dataset_id`.
    An existing dataset of that id is replaced only with ``overwrite``. The dataset is
    built in a hidden directory and renamed into place when complete, so a failed export
    leaves nothing behind (folders it created are removed again). Returns the dataset
    directory ``out_dir/<dataset_id>``.

    Raises a one-line :class:`~datasets.errors.DatasetError` (a missing or bad input file,
    an invalid id, an existing dataset, an unwritable directory).
    """
    minari = _minari()
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    source, root = Path(h5_path), Path(out_dir)
    with open_dataset(source) as ds:
        meta = ds.metadata
        dataset_id = dataset_id or default_dataset_id(meta)
        _check_dataset_id(dataset_id, root)
        target = root / dataset_id
        if target.exists() and not overwrite:
            raise MinariExistsError(f"{target}: Minari dataset already exists; not overwriting it")
        _check_out_dir(root, target)
        executed = any(_has_executed(ds.episode(i)) for i in ds.episode_ids())
        # Absolute: Minari joins a relative data path onto itself (the path came out doubled).
        work = target.absolute().with_name(f".{target.name}.partial-{os.getpid()}")
        created: list[Path] = []
        done = False
        try:
            created = make_directories(work.parent)  # the root and namespace folders
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            env_spec = _env_spec(meta)
            storage = MinariStorage.new(
                work / "data",
                observation_space=_box(meta.observation_space),
                action_space=_box(meta.action_space),
                env_spec=env_spec,
                data_format="hdf5",
            )
            dataset_meta: dict[str, Any] = {
                "dataset_id": dataset_id,
                "minari_version": minari.__version__,
                "description": _description(meta, source, ds, executed),
                "requirements": _requirements(env_spec, meta),
                METADATA_KEY: _our_metadata(meta, source, ds, executed),
            }
            algorithm = _algorithm_name(meta)
            if algorithm is not None:
                dataset_meta["algorithm_name"] = algorithm
            storage.update_metadata(dataset_meta)

            episode_attrs: list[dict[str, Any]] = []

            def buffers() -> Iterator[Any]:
                # A generator: Minari writes each episode before the next one is read.
                for index, episode_id in enumerate(ds.episode_ids()):
                    view = ds.episode(episode_id)
                    episode_attrs.append(_episode_attrs(view.info))
                    yield EpisodeBuffer(
                        id=index,
                        seed=view.info.seed,
                        observations=view.observations,
                        actions=view.actions,
                        rewards=view.rewards,
                        terminations=view.terminations,
                        truncations=view.truncations,
                        infos=_export_infos(view, str(source)),
                    )

            storage.update_episodes(buffers())
            if episode_attrs:
                storage.update_episode_metadata(episode_attrs, range(len(episode_attrs)))
            if overwrite and target.exists():
                trash = target.with_name(f".{target.name}.old-{os.getpid()}")
                os.replace(target, trash)
                os.replace(work, target)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(work, target)
            _write_namespace_metadata(root, dataset_id)
            done = True
        except OSError as exc:
            raise MinariError(f"{target}: export failed ({first_line(exc)})") from None
        except (ValueError, TypeError, AssertionError) as exc:
            # Minari reports its own problems as ValueError/AssertionError.
            raise MinariError(f"{target}: Minari refused the export ({first_line(exc)})") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if not done:
                remove_directories(created)
    return target


# ---------------------------------------------------------------------------- import
def _datasets_root(datasets_root: str | Path | None) -> Path:
    if datasets_root is not None:
        return Path(datasets_root)
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


def _resolve_source(source: str | Path, datasets_root: str | Path | None) -> tuple[Path, str]:
    """The Minari ``data`` directory of a dataset directory, data directory or id."""
    path = Path(source)
    if path.exists() and not path.is_dir():
        raise MinariError(f"{path}: is a file; a Minari dataset is a directory")
    for candidate in (path / "data", path):
        if (candidate / "metadata.json").is_file():
            return candidate, str(path)
    if path.is_dir():
        raise MinariError(f"{path}: not a Minari dataset (no data/metadata.json)")
    root = _datasets_root(datasets_root)
    data = root / str(source) / "data"
    if not path.is_absolute() and (data / "metadata.json").is_file():
        return data, str(source)
    raise MinariError(
        f"{source}: no such Minari dataset (neither a directory nor an id under {root})"
    )


def _space_spec(space: Any, name: str, where: str) -> SpaceSpec:
    from gymnasium.spaces import Box

    if not isinstance(space, Box):
        raise MinariSpaceError(
            f"{where}: {name} space is {type(space).__name__}, but only Box spaces can be imported"
        )
    return SpaceSpec.from_space(space)


def _foreign_metadata(dataset: Any, raw: dict[str, Any], where: str) -> DatasetMetadata:
    env_spec = dataset.env_spec
    env_kwargs: dict[str, Any] = {}
    if env_spec is not None:
        # Keep what JSON can hold; a value that cannot round-trip becomes its text.
        env_kwargs = json.loads(json.dumps(dict(env_spec.kwargs), default=str))
    args = {
        "imported_from": "minari",
        "dataset_id": dataset.id,
        "minari_version": dataset.minari_version,
        "source": where,
    }
    for key in ("author", "author_email"):
        if key in raw:
            args[key] = sorted(str(v) for v in raw[key])
    for key in ("code_permalink", "description", "algorithm_name"):
        if key in raw:
            args[key] = str(raw[key])
    return DatasetMetadata(
        env_id=env_spec.id if env_spec is not None else f"minari:{dataset.id}",
        observation_space=_space_spec(dataset.observation_space, "observation", where),
        action_space=_space_spec(dataset.action_space, "action", where),
        env_kwargs=env_kwargs,
        expert_id=str(raw["algorithm_name"]) if raw.get("algorithm_name") else None,
        recording_args=args,
    )


def _our_import_metadata(ours: dict[str, Any], dataset: Any, where: str) -> DatasetMetadata:
    meta = DatasetMetadata(
        env_id=str(ours["env_id"]),
        observation_space=SpaceSpec.from_json(ours["observation_space"]),
        action_space=SpaceSpec.from_json(ours["action_space"]),
        env_kwargs=dict(ours["env_kwargs"]),
        expert_id=ours["expert_id"] or None,
        noise_scale=float(ours["noise_scale"]),
        recording_args=dict(ours["recording_args"]),
    )
    for name, spec, space in (
        ("observation", meta.observation_space, dataset.observation_space),
        ("action", meta.action_space, dataset.action_space),
    ):
        found = _space_spec(space, name, where)
        if found.shape != spec.shape:
            raise MinariError(
                f"{where}: {name} space {found.describe()} differs from the exported "
                f"{spec.describe()} (was the dataset edited?)"
            )
    return meta


def _flat_infos(infos: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in (infos or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flat_infos(value, f"{name}.")
        else:
            yield name.replace("/", "."), value


def _import_infos(
    infos: Any, steps: int, ours: bool, skipped: set[str]
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Per-step infos of T rows (Minari's reset row dropped) and the executed actions."""
    kept: dict[str, np.ndarray] = {}
    executed = None
    for key, value in _flat_infos(infos):
        array = np.asarray(value)
        if array.ndim == 0 or array.dtype.kind not in "biuf" or not key:
            skipped.add(key)
            continue
        if len(array) == steps + 1:
            array = array[1:]
        elif len(array) != steps:
            skipped.add(key)
            continue
        if ours and key == EXECUTED_ACTIONS_INFO:
            executed = array
        else:
            kept[key] = array
    return kept, executed


def _attempt_plan(ours: dict[str, Any] | None, episode_meta: list[dict]) -> list | None:
    """The drops to replay between episodes, if attempts can be restored exactly."""
    if ours is None:
        return None
    try:
        attempts = [int(m[METADATA_KEY]["attempt"]) for m in episode_meta]
        drops = sorted(
            (
                (int(d["attempt"]), int(d["seed"]), str(d["reason"]))
                for d in ours["dropped_attempts"]
            ),
        )
    except (KeyError, TypeError, ValueError):
        return None
    # Each attempt is an episode or a drop exactly once; anything else cannot be replayed.
    if sorted(attempts + [a for a, _, _ in drops]) != list(range(len(attempts) + len(drops))):
        return None
    return drops


def _publish_file(tmp: Path, final: Path, overwrite: bool) -> None:
    if not overwrite:
        try:
            journal.publish(tmp, final, durable=True, replace=False)
        except FileExistsError:
            raise MinariExistsError(f"{final}: already exists; not overwriting it") from None
        return
    # Under the file's writer lock, so a live recording is never replaced under its feet.
    lock = journal.WriterLock.acquire(final)
    try:
        journal.clean(lock.directory, keep=[])  # entries of the file being replaced
        journal.publish(tmp, final, durable=True, replace=True)
    finally:
        lock.release(remove_directory=True)


def import_minari(
    dataset_dir_or_id: str | Path,
    out_h5: str | Path,
    *,
    datasets_root: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Read a Minari dataset with Minari's loader and write it as one of our files.

    ``dataset_dir_or_id``: a dataset directory (holding ``data/``), its ``data``
    directory, or a dataset id under ``datasets_root`` (default: ``MINARI_DATASETS_PATH``,
    else ``~/.minari/datasets``); nothing is downloaded. Observation and action spaces
    must be Box. Our own exports get their metadata, seeds, attempts and dropped attempts
    back; see the module docstring for foreign datasets. The file is written under a
    temporary name and renamed into place when complete (missing folders are created,
    and removed again if the import fails); an existing ``out_h5`` is replaced only with
    ``overwrite``. Episodes with NaN/Inf are rejected by the writer and logged as dropped
    attempts (a warning says how many). Returns ``out_h5``.
    """
    _minari()
    from minari import MinariDataset

    out = Path(out_h5)
    data_path, where = _resolve_source(dataset_dir_or_id, datasets_root)
    if out.exists() and not overwrite:
        raise MinariExistsError(f"{out}: already exists; not overwriting it")
    if out.is_dir():
        raise MinariError(f"{out}: is a directory, not a file")
    problem = location_problem(out)
    if problem:
        raise MinariError(f"{out}: {problem}")
    try:
        dataset = MinariDataset(data_path)
        raw = dataset.storage.metadata
    except (ValueError, TypeError, KeyError, AssertionError, OSError) as exc:
        raise MinariError(f"{where}: cannot load as a Minari dataset ({first_line(exc)})") from None
    entry = raw.get(METADATA_KEY)
    ours = entry if isinstance(entry, dict) and entry.get("format") == EXPORT_FORMAT else None
    if ours is not None:
        meta = _our_import_metadata(ours, dataset, where)
        compression = str(ours.get("compression") or "gzip")
    else:
        meta = _foreign_metadata(dataset, raw, where)
        compression = "gzip"

    tmp = out.with_name(f".{out.name}.importing-{os.getpid()}")
    skipped: set[str] = set()
    created: list[Path] = []
    done = False
    try:
        created = make_directories(out.parent)
        indices = dataset.episode_indices
        # Episode attributes are small; reading them first lets attempts be checked.
        episode_meta = list(dataset.storage.get_episode_metadata(indices))
        drops = _attempt_plan(ours, episode_meta)
        with EpisodeWriter.create(
            tmp, meta, overwrite=True, compression=compression, durable=False
        ) as writer:

            def replay_drops(before: float) -> None:
                while drops and drops[0][0] < before:
                    attempt, seed, reason = drops.pop(0)
                    writer.drop(seed, reason, attempt=attempt)

            for episode, ep_meta in zip(
                dataset.iterate_episodes(indices), episode_meta, strict=True
            ):
                mine = ep_meta.get(METADATA_KEY, {}) if ours is not None else {}
                attempt = int(mine["attempt"]) if drops is not None else None
                if attempt is not None:
                    replay_drops(attempt)
                steps = len(episode.rewards)
                infos, executed = _import_infos(episode.infos, steps, ours is not None, skipped)
                seed = ep_meta.get("seed")
                writer.commit(
                    Episode(
                        observations=episode.observations,
                        actions=episode.actions,
                        rewards=episode.rewards,
                        terminations=episode.terminations,
                        truncations=episode.truncations,
                        seed=UNKNOWN_SEED if seed is None else int(seed),
                        executed_actions=executed,
                        infos=infos,
                        attempt=attempt,
                        fell=bool(mine["fell"]) if "fell" in mine else None,
                        distance=float(mine.get("distance", math.nan)),
                    )
                )
            if drops is not None:
                replay_drops(math.inf)
            rejected = writer.stats.rejected
        validate(tmp)
        _publish_file(tmp, out, overwrite)
        done = True
    except MinariError:
        raise
    except DatasetError as exc:
        # The writer names the temporary file; the user only knows the output's name.
        raise type(exc)(str(exc).replace(str(tmp), str(out))) from None
    except OSError as exc:
        raise MinariError(f"{out}: import failed ({first_line(exc)})") from None
    except (ValueError, TypeError, KeyError, AssertionError) as exc:
        raise MinariError(f"{where}: cannot read the Minari dataset ({first_line(exc)})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
        shutil.rmtree(journal.journal_dir(tmp), ignore_errors=True)
        if not done:
            remove_directories(created)
    if skipped:
        warnings.warn(
            f"{where}: infos not imported (not numeric arrays of T or T+1 rows): "
            f"{', '.join(sorted(skipped))}",
            stacklevel=2,
        )
    if rejected:
        warnings.warn(
            f"{where}: {rejected} episodes with NaN/Inf were not imported "
            "(logged as dropped attempts)",
            stacklevel=2,
        )
    return out
