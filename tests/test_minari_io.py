"""Minari interchange: our files -> Minari datasets (read with minari's own loader) -> back.

The demonstrations are real: short episodes of both humanoid envs driven by the shipped
experts, committed with the crash-safe writer, so the arrays and metadata are what a
``pipeline record`` run produces.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest
from minari.cli import app as minari_cli
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_storage import MinariStorage
from minari.namespace import list_local_namespaces
from typer.testing import CliRunner

import sim
from datasets import (
    DatasetError,
    DatasetMetadata,
    Episode,
    EpisodeWriter,
    SpaceSpec,
    open_dataset,
    validate,
)
from datasets.interchange import (
    EXECUTED_ACTIONS_INFO,
    METADATA_KEY,
    MinariError,
    MinariExistsError,
    MinariSpaceError,
    default_dataset_id,
    export_minari,
    import_minari,
)
from datasets.store.errors import DatasetExistsError, DatasetNotFoundError

RUN_ID = "humanoid/run/expert-noise0p01-v0"
RUN_KWARGS = {"max_steps": 50}
WALK_KWARGS = {"episode_seconds": 1.0}
NOISE = 0.01


def _record(env: gym.Env, expert: sim.MLPExpert, seed: int, noise: float) -> Episode:
    """One expert episode; with noise the executed action differs from the clean label."""
    rng = np.random.default_rng(seed)
    dtype = env.action_space.dtype
    obs, _ = env.reset(seed=seed)
    observations, labels, executed, rewards, terms, truncs = [obs], [], [], [], [], []
    infos: dict[str, list[float]] = {}
    done = False
    info: dict = {}
    while not done:
        label = expert.act(obs).astype(dtype)
        action = label
        if noise:
            action = label + rng.normal(size=label.shape) * noise * expert.action_scale
            action = action.astype(dtype)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        labels.append(label)
        executed.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        for key, value in info.items():
            if isinstance(value, int | float | bool | np.number | np.bool_):
                infos.setdefault(key, []).append(float(value))
        done = terminated or truncated
    return Episode(
        observations=np.asarray(observations, dtype=env.observation_space.dtype),
        actions=np.asarray(labels, dtype=dtype),
        executed_actions=np.asarray(executed, dtype=dtype) if noise else None,
        rewards=np.asarray(rewards, dtype=np.float64),
        terminations=np.asarray(terms, dtype=bool),
        truncations=np.asarray(truncs, dtype=bool),
        infos={k: np.asarray(v) for k, v in infos.items() if len(v) == len(rewards)},
        seed=seed,
        distance=float(info.get("distance", math.nan)),
    )


def _record_file(
    path: Path, env_id: str, kwargs: dict, expert: str, noise: float, plan: str
) -> Path:
    """``plan``: one letter per attempt, ``e`` = commit an episode, ``d`` = drop it."""
    env = gym.make(env_id, **kwargs)
    meta = DatasetMetadata(
        env_id=env_id,
        observation_space=SpaceSpec.from_space(env.observation_space),
        action_space=SpaceSpec.from_space(env.action_space),
        env_kwargs=kwargs,
        expert_id=expert,
        noise_scale=noise,
        recording_args={"episodes": plan.count("e"), "seed": 11, "noise": noise},
    )
    policy = sim.load_expert(expert)
    with EpisodeWriter.create(path, meta, durable=False) as writer:
        for attempt, kind in enumerate(plan):
            seed = 1000 + attempt
            if kind == "d":
                writer.drop(seed, "fell")
            else:
                writer.commit(_record(env, policy, seed, noise))
    env.close()
    return path


@pytest.fixture(scope="module")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three noisy run episodes (executed actions stored) and one dropped attempt."""
    path = tmp_path_factory.mktemp("run") / "run.h5"
    return _record_file(path, "sim/HumanoidRun-v0", RUN_KWARGS, "humanoid_run", NOISE, "eede")


@pytest.fixture(scope="module")
def walk_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two clean one-second walk episodes (197-d observations, 36-d actions)."""
    path = tmp_path_factory.mktemp("walk") / "walk.h5"
    return _record_file(path, "sim/HumanoidWalk-v0", WALK_KWARGS, "humanoid_walk", 0.0, "ee")


@pytest.fixture(scope="module")
def run_export(run_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run file exported under a fresh Minari root; returns the root."""
    root = tmp_path_factory.mktemp("minari") / "root"
    export_minari(run_file, root)
    return root


def _assert_same_file(a: Path, b: Path) -> None:
    """Same metadata (all but the per-file ids/times), episodes, arrays and drops."""
    with open_dataset(a) as x, open_dataset(b) as y:
        for field in (
            "env_id",
            "observation_space",
            "action_space",
            "env_kwargs",
            "expert_id",
            "noise_scale",
            "recording_args",
            "schema_version",
            "compression",
        ):
            assert getattr(x.metadata, field) == getattr(y.metadata, field), field
        assert len(x) == len(y)
        assert x.dropped_attempts == y.dropped_attempts
        assert x.next_attempt == y.next_attempt
        for info_x, info_y in zip(x.episode_infos(), y.episode_infos(), strict=True):
            # The checksum covers every array, its dtype and shape, and the infos.
            assert (info_x.id, info_x.seed, info_x.attempt) == (
                info_y.id,
                info_y.seed,
                info_y.attempt,
            )
            assert info_x.checksum == info_y.checksum
            assert (info_x.fell, info_x.total_steps) == (info_y.fell, info_y.total_steps)
            assert info_x.episode_return == info_y.episode_return
            assert info_x.distance == pytest.approx(info_y.distance, nan_ok=True)
            ex, ey = x.episode(info_x.id).load(), y.episode(info_y.id).load()
            for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                assert np.array_equal(getattr(ex, key), getattr(ey, key)), key
                assert getattr(ex, key).dtype == getattr(ey, key).dtype, key
            assert (ex.executed_actions is None) == (ey.executed_actions is None)
            if ex.executed_actions is not None:
                assert np.array_equal(ex.executed_actions, ey.executed_actions)
            assert ex.infos.keys() == ey.infos.keys()
        assert y.verify() == []
    validate(b)


# ----------------------------------------------------------------------------- export
def test_export_is_read_by_minaris_loader(
    run_file: Path, run_export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(run_export))
    dataset = minari.load_dataset(RUN_ID)
    with open_dataset(run_file) as ours:
        infos = ours.episode_infos()
        assert dataset.total_episodes == len(ours) == 3
        assert dataset.total_steps == sum(i.total_steps for i in infos)
        episode_meta = list(dataset.storage.get_episode_metadata(dataset.episode_indices))
        for info, episode, ep_meta in zip(
            infos, dataset.iterate_episodes(), episode_meta, strict=True
        ):
            view = ours.episode(info.id)
            assert episode.id == info.id
            for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                mine, theirs = getattr(view, key), getattr(episode, key)
                assert theirs.dtype == mine.dtype and np.array_equal(theirs, mine), key
            # Minari's infos have a reset row first; ours start after the first action.
            executed = episode.infos[EXECUTED_ACTIONS_INFO]
            assert np.isnan(executed[0]).all()
            assert np.array_equal(executed[1:], view.executed_actions)
            assert not np.array_equal(view.executed_actions, view.actions)  # noise applied
            for key in view.info_keys():
                assert np.array_equal(episode.infos[key][1:], view.infos(key))
            assert ep_meta["seed"] == info.seed
            mine_attrs = ep_meta[METADATA_KEY]
            assert (mine_attrs["attempt"], mine_attrs["checksum"]) == (info.attempt, info.checksum)
            assert bool(mine_attrs["fell"]) == info.fell
        # A few episodes by index too (Minari's random access path).
        last = dataset[2]
        assert np.array_equal(last.actions, ours.episode(2).actions)

        metadata = dataset.storage.metadata
        assert metadata["algorithm_name"] == f"expert humanoid_run with DART noise {NOISE:g}"
        assert metadata["minari_version"] == minari.__version__
        assert "author" not in metadata and "code_permalink" not in metadata
        assert "humanoid-imitation" in metadata["requirements"]
        mine = metadata[METADATA_KEY]
        assert mine["env_id"] == "sim/HumanoidRun-v0"
        assert mine["env_kwargs"] == RUN_KWARGS
        assert mine["expert_id"] == "humanoid_run"
        assert mine["noise_scale"] == NOISE
        assert mine["schema_version"] == ours.metadata.schema_version
        assert mine["recording_args"] == ours.metadata.recording_args
        assert mine["source_file"] == "run.h5"
        assert mine["dropped_attempts"] == [{"attempt": 2, "seed": 1002, "reason": "fell"}]
    assert dataset.observation_space == gym.spaces.Box(-5.0, 5.0, (44,), np.float32)
    assert dataset.action_space == gym.spaces.Box(-1.0, 1.0, (17,), np.float32)


def test_export_env_spec_recovers_our_env(run_export: Path) -> None:
    dataset = minari.MinariDataset(run_export / RUN_ID / "data")
    spec = dataset.env_spec
    assert spec.id == "sim/HumanoidRun-v0"
    assert spec.entry_point == "sim.humanoid_run:HumanoidRunEnv"
    assert spec.kwargs == RUN_KWARGS
    env = dataset.recover_environment()
    try:
        assert env.observation_space == dataset.observation_space
        obs, _ = env.reset(seed=1000)
        first = dataset[0]
        assert np.array_equal(obs, first.observations[0])  # same seed, same start
        assert env.unwrapped.spec.kwargs == RUN_KWARGS
    finally:
        env.close()


def test_export_passes_minaris_checks(run_export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Minari 0.5 has no validate(); its listing, version check and ``minari show`` are it."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(run_export))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Misconfigured dataset" is a warning
        listed = minari.list_local_datasets(compatible_minari_version=True)
    assert list(listed) == [RUN_ID]
    assert {"humanoid", "humanoid/run"} <= set(list_local_namespaces())
    result = CliRunner().invoke(minari_cli, ["show", RUN_ID])
    assert result.exit_code == 0, result.output
    assert "Total Episodes" in result.output and "sim/HumanoidRun-v0" in result.output

    # The structural invariants minari's own loader relies on, for every episode.
    storage = MinariStorage.read(run_export / RUN_ID / "data")
    assert storage.total_episodes == 3
    steps = 0
    for episode, meta in zip(
        storage.get_episodes(range(3)), storage.get_episode_metadata(range(3)), strict=True
    ):
        length = len(episode["rewards"])
        assert meta["total_steps"] == length
        assert episode["observations"].shape == (length + 1, 44)
        assert episode["actions"].shape == (length, 17)
        assert len(episode["terminations"]) == len(episode["truncations"]) == length
        assert all(len(v) == length + 1 for v in episode["infos"].values())
        assert storage.observation_space.contains(episode["observations"][0])
        steps += length
    assert storage.total_steps == steps


def test_default_dataset_ids(run_file: Path, walk_file: Path) -> None:
    with open_dataset(walk_file) as walk, open_dataset(run_file) as run:
        assert default_dataset_id(walk.metadata) == "humanoid/walk/expert-v0"
        assert default_dataset_id(run.metadata) == RUN_ID


# ------------------------------------------------------------------------ round trips
def test_round_trip_run_restores_everything(
    run_file: Path, run_export: Path, tmp_path: Path
) -> None:
    back = import_minari(RUN_ID, tmp_path / "back.h5", datasets_root=run_export)
    assert back == tmp_path / "back.h5"
    _assert_same_file(run_file, back)
    assert not list(tmp_path.glob(".*"))  # no temporary file or journal left behind


def test_round_trip_walk_by_directory(walk_file: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    target = export_minari(walk_file, root, "demo/walk-v3")
    assert target == root / "demo" / "walk-v3"
    dataset = minari.MinariDataset(target / "data")
    assert dataset.id == "demo/walk-v3"
    assert dataset.observation_space.shape == (197,) and dataset.action_space.shape == (36,)
    with open_dataset(walk_file) as ours:
        for info, episode in zip(ours.episode_infos(), dataset, strict=True):
            assert np.array_equal(episode.observations, ours.episode(info.id).observations)
            assert EXECUTED_ACTIONS_INFO not in episode.infos  # a clean recording
    back = import_minari(target, tmp_path / "back.h5")  # a directory, not an id
    _assert_same_file(walk_file, back)


# ---------------------------------------------------------------------- overwriting
def test_export_refuses_to_overwrite(run_file: Path, walk_file: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    target = export_minari(run_file, root, "same/data-v0")
    metadata = (target / "data" / "metadata.json").read_text()
    with pytest.raises(MinariExistsError, match="already exists") as info:
        export_minari(walk_file, root, "same/data-v0")
    assert isinstance(info.value, DatasetExistsError) and "\n" not in str(info.value)
    assert str(target) in str(info.value)
    assert (target / "data" / "metadata.json").read_text() == metadata
    export_minari(walk_file, root, "same/data-v0", overwrite=True)
    assert minari.MinariDataset(target / "data").total_episodes == 2
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "data-v0",
        "namespace_metadata.json",
    ]


def test_import_refuses_to_overwrite(run_export: Path, walk_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken.h5"
    out.write_bytes(walk_file.read_bytes())
    with pytest.raises(MinariExistsError, match="already exists"):
        import_minari(RUN_ID, out, datasets_root=run_export)
    assert out.read_bytes() == walk_file.read_bytes()
    import_minari(RUN_ID, out, datasets_root=run_export, overwrite=True)
    with open_dataset(out) as ds:
        assert ds.metadata.env_id == "sim/HumanoidRun-v0" and len(ds) == 3


# ------------------------------------------------------------------------- bad input
def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


def test_bad_sources(tmp_path: Path, run_file: Path, run_export: Path) -> None:
    with pytest.raises(DatasetNotFoundError):
        export_minari(tmp_path / "missing.h5", tmp_path / "root")
    with pytest.raises(MinariError, match="no such Minari dataset") as info:
        import_minari(tmp_path / "nowhere", tmp_path / "x.h5")
    assert str(tmp_path / "nowhere") in _one_line(info.value)
    with pytest.raises(MinariError, match="no such Minari dataset"):
        import_minari("humanoid/none-v0", tmp_path / "x.h5", datasets_root=run_export)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MinariError, match="not a Minari dataset"):
        import_minari(tmp_path / "empty", tmp_path / "x.h5")
    with pytest.raises(MinariError, match="is a file"):
        import_minari(run_file, tmp_path / "x.h5")
    with pytest.raises(MinariError, match="invalid Minari dataset id") as info:
        export_minari(run_file, tmp_path / "root", "no version")
    _one_line(info.value)
    (tmp_path / "a").write_text("a file in the way")
    with pytest.raises(MinariError, match="is not a directory"):
        export_minari(run_file, tmp_path / "a" / "b" / "root")
    with pytest.raises(DatasetError, match="is not a directory"):
        import_minari(RUN_ID, tmp_path / "a" / "x.h5", datasets_root=run_export)
    assert not (tmp_path / "x.h5").exists()


def _foreign(
    root: Path,
    dataset_id: str,
    observation_space: gym.Space,
    action_space: gym.Space,
    buffers: list[EpisodeBuffer],
    **kwargs: object,
) -> None:
    """A dataset made by minari's own API (not by us)."""
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        patch.setenv("MINARI_DATASETS_PATH", str(root))
        warnings.simplefilter("ignore")  # minari nags about author, permalink, ...
        minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            observation_space=observation_space,
            action_space=action_space,
            **kwargs,
        )


@pytest.mark.parametrize("which", ["observation", "action"])
def test_non_box_spaces_are_refused(tmp_path: Path, which: str) -> None:
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    steps = 3
    if which == "observation":
        obs_space = gym.spaces.Dict({"a": box, "b": box})
        observations = {k: np.zeros((steps + 1, 2), np.float32) for k in ("a", "b")}
        act_space, actions = box, np.zeros((steps, 2), np.float32)
    else:
        obs_space, observations = box, np.zeros((steps + 1, 2), np.float32)
        act_space, actions = gym.spaces.Discrete(3), np.zeros(steps, np.int64)
    buffer = EpisodeBuffer(
        observations=observations,
        actions=actions,
        rewards=np.zeros(steps),
        terminations=np.zeros(steps, bool),
        truncations=np.ones(steps, bool),
    )
    _foreign(tmp_path, "foreign/odd-v0", obs_space, act_space, [buffer])
    out = tmp_path / "odd.h5"
    with pytest.raises(MinariSpaceError, match=f"{which} space is") as info:
        import_minari("foreign/odd-v0", out, datasets_root=tmp_path)
    assert "foreign/odd-v0" in _one_line(info.value)
    assert not out.exists() and not list(tmp_path.glob(".odd.h5*"))


def test_foreign_box_dataset_imports(tmp_path: Path) -> None:
    """A Pendulum dataset made with minari's API: env id from its spec, infos shifted."""
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    buffers = []
    for seed, steps in ((7, 5), (None, 4)):
        buffers.append(
            EpisodeBuffer(
                seed=seed,
                observations=rng.uniform(-1, 1, (steps + 1, 3)).astype(np.float32),
                actions=rng.uniform(-2, 2, (steps, 1)).astype(np.float32),
                rewards=rng.normal(size=steps),
                terminations=np.zeros(steps, bool),
                truncations=np.arange(steps) == steps - 1,
                infos={
                    "x": np.arange(steps + 1, dtype=np.float64),
                    "nested": {"y": np.arange(steps + 1, dtype=np.int64) * 2},
                    "label": ["s"] * (steps + 1),
                },
            )
        )
    _foreign(
        tmp_path,
        "pendulum/random-v0",
        env.observation_space,
        env.action_space,
        buffers,
        env="Pendulum-v1",
        algorithm_name="random",
        author="someone",
    )
    out = tmp_path / "pendulum.h5"
    with pytest.warns(UserWarning, match="infos not imported.*label"):
        import_minari("pendulum/random-v0", out, datasets_root=tmp_path)
    with open_dataset(out) as ds:
        meta = ds.metadata
        assert meta.env_id == "Pendulum-v1"
        assert meta.expert_id == "random" and meta.noise_scale == 0.0
        assert meta.observation_space == SpaceSpec.from_space(env.observation_space)
        assert meta.recording_args["dataset_id"] == "pendulum/random-v0"
        assert meta.recording_args["author"] == ["someone"]
        assert [i.seed for i in ds.episode_infos()] == [7, -1]
        for buffer, info in zip(buffers, ds.episode_infos(), strict=True):
            episode = ds.episode(info.id)
            assert np.array_equal(episode.observations, buffer.observations)
            assert np.array_equal(episode.actions, buffer.actions)
            assert np.array_equal(episode.rewards, buffer.rewards)
            assert np.array_equal(episode.truncations, buffer.truncations)
            assert episode.info_keys() == ["nested.y", "x"]
            assert np.array_equal(episode.infos("x"), buffer.infos["x"][1:])
            assert np.array_equal(episode.infos("nested.y"), buffer.infos["nested"]["y"][1:])
        assert ds.verify() == []
    env.close()


def test_failed_export_leaves_nothing(tmp_path: Path) -> None:
    """An info that collides with the executed-actions slot stops the export cleanly."""
    space = SpaceSpec.unbounded((2,))
    meta = DatasetMetadata(env_id="test/Nothing-v0", observation_space=space, action_space=space)
    path = tmp_path / "clash.h5"
    with EpisodeWriter.create(path, meta, durable=False) as writer:
        writer.commit(
            Episode(
                observations=np.zeros((3, 2)),
                actions=np.zeros((2, 2)),
                executed_actions=np.ones((2, 2)),
                rewards=np.zeros(2),
                terminations=np.zeros(2, bool),
                truncations=np.array([False, True]),
                infos={EXECUTED_ACTIONS_INFO: np.zeros(2)},
                seed=1,
            )
        )
    root = tmp_path / "root"
    with pytest.raises(MinariError, match="executed_actions") as info:
        export_minari(path, root, "clash/x-v0")
    _one_line(info.value)
    assert not root.exists()  # no partial dataset, and no folder it created


def test_export_metadata_is_plain_json(run_export: Path) -> None:
    """Other tools read metadata.json without minari: it must be parseable JSON."""
    text = (run_export / RUN_ID / "data" / "metadata.json").read_text()
    parsed = json.loads(text)
    assert parsed[METADATA_KEY]["format"] == "humanoid-imitation/minari-export"
    assert parsed["env_spec"] and parsed["dataset_id"] == RUN_ID
