"""Export: one of our demonstration files -> a Minari dataset under a datasets root.

``datasets.interchange.minari_format`` says what maps where.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from datasets.interchange.minari_format import (
    EXECUTED_ACTIONS_INFO,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    IMAGES_INFO,
    METADATA_KEY,
    MinariError,
    MinariExistsError,
    load_minari,
)
from datasets.store.checks import (
    location_problem,
    make_directories,
    remove_directories,
)
from datasets.store.errors import first_line
from datasets.store.reader import Dataset, EpisodeView, open_dataset
from datasets.store.schema import (
    EXECUTED_ACTIONS,
    FORMAT_NAME,
    DatasetMetadata,
    EpisodeInfo,
    SpaceSpec,
    installed_version,
    utc_now,
)


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
    return installed_version(name) or "not installed"


def _with_reset_row(array: np.ndarray) -> np.ndarray:
    # Minari's infos have T+1 rows (row 0 comes from reset); ours have T. NaN says "unknown".
    fill = np.nan if array.dtype.kind in "fc" else 0
    head = np.full((1, *array.shape[1:]), fill, dtype=array.dtype)
    return np.concatenate([head, array])


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
        "camera": meta.camera.to_json() if meta.camera else None,
        "images_info": IMAGES_INFO if meta.camera else None,
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
    if view.images is not None:
        if IMAGES_INFO in infos:
            raise MinariError(f"{where}: episode {view.id} has an info named {IMAGES_INFO!r}, "
                              "which the export needs for the camera frames")  # fmt: skip
        infos[IMAGES_INFO] = view.images[()]
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

    Raises a one-line :class:`~datasets.store.errors.DatasetError` (a missing or bad input file,
    an invalid id, an existing dataset, an unwritable directory).
    """
    minari = load_minari()
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
