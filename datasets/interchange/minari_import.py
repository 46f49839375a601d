"""Import: a Minari dataset, read with Minari's own loader -> one of our demonstration files.

``datasets.interchange.minari_format`` says what maps where, and what a foreign dataset
(one we did not export) keeps.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from datasets.interchange.minari_format import (
    EXECUTED_ACTIONS_INFO,
    EXPORT_FORMAT,
    IMAGES_INFO,
    METADATA_KEY,
    UNKNOWN_SEED,
    MinariError,
    MinariExistsError,
    MinariSpaceError,
    load_minari,
)
from datasets.store import journal
from datasets.store.checks import (
    location_problem,
    make_directories,
    remove_directories,
)
from datasets.store.errors import DatasetError, first_line
from datasets.store.reader import validate
from datasets.store.schema import (
    CameraSpec,
    DatasetMetadata,
    Episode,
    SpaceSpec,
)
from datasets.store.writer import EpisodeWriter


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
        camera=CameraSpec.from_json(ours.get("camera") or "null"),
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
) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray | None]:
    """Per-step infos of T rows (Minari's reset row dropped), the executed actions and
    the camera frames (T+1 rows, one per observation) of one of our exports."""
    kept: dict[str, np.ndarray] = {}
    executed = images = None
    for key, value in _flat_infos(infos):
        array = np.asarray(value)
        if ours and key == IMAGES_INFO:
            images = array
            continue
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
    return kept, executed, images


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
    back; see ``minari_format`` for foreign datasets. The file is written under a
    temporary name and renamed into place when complete (missing folders are created,
    and removed again if the import fails); an existing ``out_h5`` is replaced only with
    ``overwrite``. Episodes with NaN/Inf are rejected by the writer and logged as dropped
    attempts (a warning says how many). Returns ``out_h5``.
    """
    load_minari()
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
                infos, executed, images = _import_infos(episode.infos, steps, ours is not None,
                                                        skipped)  # fmt: skip
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
                        images=images,
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
