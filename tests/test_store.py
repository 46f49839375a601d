"""The episode store: writer, lazy reader, validation, and every bad input it must refuse.

Every refusal is checked for one clear line that names the file, and for leaving the
episodes committed before intact. Crash safety under SIGKILL is in test_store_crash.py.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest

from datasets import (
    Compression,
    DatasetMetadata,
    Episode,
    EpisodeWriter,
    SpaceSpec,
    open_dataset,
    validate,
)
from datasets.store import errors
from datasets.store import writer as writer_module
from datasets.store.journal import journal_dir

OBS, ACT = (5,), (3,)
META = DatasetMetadata(
    env_id="sim/HumanoidRun-v0",
    observation_space=SpaceSpec.unbounded(OBS),
    action_space=SpaceSpec.from_space(
        type("Box", (), {"shape": ACT, "dtype": "float32", "low": -1.0, "high": [1, 2, 3]})
    ),
    env_kwargs={"a": 1},
    expert_id="humanoid_run",
    noise_scale=0.01,
    recording_args={"episodes": 3, "seed": 0},
)


def make_episode(rng: np.random.Generator, steps: int = 20, *, fell: bool = False, **kw) -> Episode:
    terminations = np.zeros(steps, dtype=bool)
    truncations = np.zeros(steps, dtype=bool)
    (terminations if fell else truncations)[-1] = True
    fields = {
        "observations": rng.standard_normal((steps + 1, *OBS)).astype(np.float32),
        "actions": rng.standard_normal((steps, *ACT)).astype(np.float32),
        "rewards": rng.random(steps),
        "terminations": terminations,
        "truncations": truncations,
        "seed": int(rng.integers(1 << 31)),
        "distance": float(rng.uniform(0, 10)),
        "infos": {"pose": rng.random(steps)},
    }
    fields.update(kw)
    return Episode(**fields)


def one_line(exc: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(exc.value)
    assert "\n" not in message and message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def intact(path: Path, count: int) -> None:
    """The dataset holds ``count`` episodes, all with matching checksums."""
    assert validate(path) == count
    with open_dataset(path) as ds:
        assert len(ds) == count and ds.verify() == []


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def recorded(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, list[Episode]]:
    """A file with 4 episodes (one with executed actions, one that fell) and 1 drop."""
    path = tmp_path / "data.h5"
    episodes = [
        make_episode(rng, 20),
        make_episode(rng, 33, fell=True),
        make_episode(rng, 7, executed_actions=rng.standard_normal((7, *ACT))),
        make_episode(rng, 50),
    ]
    with EpisodeWriter.create(path, META) as writer:
        for i, episode in enumerate(episodes):
            assert writer.commit(episode).episode_id == i
            if i == 1:
                assert writer.drop(123, "fell") == 2
    return path, episodes


# ------------------------------------------------------------------ round trips
def test_episodes_round_trip(recorded):
    path, episodes = recorded
    with open_dataset(path) as ds:
        assert len(ds) == 4 and ds.next_attempt == 5
        for i, original in enumerate(episodes):
            view = ds.episode(i)
            np.testing.assert_array_equal(view.observations, original.observations)
            np.testing.assert_array_equal(view.actions, original.actions)
            np.testing.assert_array_equal(view.rewards, original.rewards)
            np.testing.assert_array_equal(view.terminations, original.terminations)
            np.testing.assert_array_equal(view.truncations, original.truncations)
            np.testing.assert_array_equal(view.infos("pose"), original.infos["pose"])
            assert view.info.seed == original.seed
            assert view.info.total_steps == original.total_steps
            assert view.info.episode_return == pytest.approx(original.episode_return)
            assert view.info.distance == pytest.approx(original.distance)
            assert view.info.attempt == (i if i < 2 else i + 1)
        assert ds.episode(1).info.fell and not ds.episode(0).info.fell
        assert ds.episode(0).executed_actions is None
        np.testing.assert_allclose(ds.episode(2).executed_actions, episodes[2].executed_actions)
        np.testing.assert_array_equal(
            ds.episode(3).dataset("actions")[5:8], episodes[3].actions[5:8]
        )
        loaded = ds.episode(3).load()
        np.testing.assert_array_equal(loaded.observations, episodes[3].observations)
        assert [(d.attempt, d.seed, d.reason) for d in ds.dropped_attempts] == [(2, 123, "fell")]


def test_file_metadata_round_trip(recorded):
    path, _ = recorded
    with open_dataset(path) as ds:
        meta = ds.metadata
    assert meta.env_id == META.env_id and meta.env_kwargs == {"a": 1}
    assert meta.observation_space == META.observation_space
    assert meta.action_space.low == (-1.0, -1.0, -1.0)
    assert meta.action_space.high == (1.0, 2.0, 3.0)
    assert math.isinf(meta.observation_space.high[0])
    assert meta.expert_id == "humanoid_run" and meta.noise_scale == 0.01
    assert meta.recording_args == {"episodes": 3, "seed": 0}
    assert meta.schema_version == 1 and meta.compression == "gzip:4"
    assert set(meta.package_versions) >= {"numpy", "h5py", "pybullet", "gymnasium", "python"}
    assert meta.created.endswith("+00:00") and len(meta.dataset_uuid) == 32
    with h5py.File(path, "r") as f:  # plain HDF5 tools see JSON text and Minari-like groups
        assert json.loads(f.attrs["observation_space"])["shape"] == [5]
        assert f["episode_0/observations"].shape == (21, 5)
        assert f["episode_0/observations"].compression is None  # under 16 KiB: unfiltered
        assert f["episode_0"].attrs["committed"]


def test_filters_and_iter_steps(recorded):
    path, episodes = recorded
    with open_dataset(path) as ds:
        assert ds.episode_ids(fell=True) == [1]
        assert ds.episode_ids(fell=False, min_steps=20) == [0, 3]
        assert ds.episode_ids(max_steps=20) == [0, 2]
        chunks = list(ds.iter_steps(16, executed_actions=True))
        subset = list(ds.iter_steps(1000, episode_ids=[3, 0]))
    assert [len(c.actions) for c in chunks] == [16] * 6 + [14]  # 110 steps
    joined = {k: np.concatenate([getattr(c, k) for c in chunks]) for k in vars(chunks[0])}
    np.testing.assert_array_equal(
        joined["observations"], np.concatenate([e.observations[:-1] for e in episodes])
    )
    np.testing.assert_array_equal(
        joined["next_observations"], np.concatenate([e.observations[1:] for e in episodes])
    )
    np.testing.assert_array_equal(joined["actions"], np.concatenate([e.actions for e in episodes]))
    executed = [e.actions if e.executed_actions is None else e.executed_actions for e in episodes]
    np.testing.assert_allclose(joined["executed_actions"], np.concatenate(executed), rtol=1e-6)
    assert list(joined["episode_ids"][[0, 19, 20, 109]]) == [0, 0, 1, 3]
    assert list(joined["steps"][[0, 19, 20, 109]]) == [0, 19, 0, 49]
    assert len(subset) == 1 and list(np.unique(subset[0].episode_ids)) == [0, 3]
    assert subset[0].episode_ids[0] == 3 and subset[0].executed_actions is None


def test_summary_streams_ranges_and_stats(recorded):
    path, episodes = recorded
    with open_dataset(path) as ds:
        summary = ds.summary()
    assert summary.episodes == 4 and summary.total_steps == 110 and summary.falls == 1
    assert summary.survival_rate == 0.75 and summary.dropped == 1
    assert summary.dropped_reasons == {"fell": 1} and summary.next_attempt == 5
    obs = np.concatenate([e.observations for e in episodes])
    np.testing.assert_allclose(summary.observation_min, obs.min(axis=0))
    np.testing.assert_allclose(summary.observation_max, obs.max(axis=0))
    acts = np.concatenate([e.actions for e in episodes])
    np.testing.assert_allclose(summary.action_max, acts.max(axis=0))
    assert summary.returns.mean == pytest.approx(np.mean([e.episode_return for e in episodes]))
    assert summary.steps.max == 50 and summary.file_bytes == path.stat().st_size
    assert summary.recording_args == META.recording_args and summary.sessions == 1
    json.dumps(summary.to_dict(), allow_nan=False)  # strict JSON for --json


def test_verify_finds_a_damaged_episode(recorded):
    path, _ = recorded
    with h5py.File(path, "r+") as f:  # silent bit rot inside episode 2's arrays
        f["episode_2/rewards"][3] += 1.0
    with open_dataset(path) as ds:
        assert ds.verify() == [2]
    assert validate(path) == 4  # structure is fine; only the checksum tells


@pytest.mark.parametrize("spec", ["gzip", "gzip:9", "lzf", "none"])
def test_compression_options_keep_checksums(tmp_path, spec):
    episode = make_episode(np.random.default_rng(3), 40)
    with EpisodeWriter.create(tmp_path / "c.h5", META, compression=spec) as writer:
        writer.commit(episode)
    with open_dataset(tmp_path / "c.h5") as ds:
        assert ds.metadata.compression == str(Compression.parse(spec))
        assert ds.verify() == []
        # The same arrays give the same checksum whatever the storage.
        reference = make_episode(np.random.default_rng(3), 40)
        with EpisodeWriter.create(tmp_path / "ref.h5", META, compression="none") as w2:
            w2.commit(reference)
        with open_dataset(tmp_path / "ref.h5") as ref:
            assert ds.episode(0).info.checksum == ref.episode(0).info.checksum


def test_compression_spec_errors():
    with pytest.raises(ValueError, match="unknown compression"):
        Compression.parse("zstd")
    with pytest.raises(ValueError, match="0-9"):
        Compression.parse("gzip:12")


def test_compressed_file_is_smaller_on_smooth_data(tmp_path):
    t = np.linspace(0, 20, 1001)[:, None]  # observations 20 KB: above the small-array bound
    smooth = Episode(
        observations=np.sin(t + np.arange(5)).astype(np.float32),
        actions=np.cos(t[:-1] + np.arange(3)).astype(np.float32),
        rewards=np.ones(1000),
        terminations=np.zeros(1000, bool),
        truncations=np.r_[np.zeros(999, bool), True],
        seed=0,
    )
    sizes = {}
    for spec in ("gzip", "none"):
        with EpisodeWriter.create(tmp_path / f"{spec}.h5", META, compression=spec) as writer:
            writer.commit(smooth)
        with h5py.File(tmp_path / f"{spec}.h5", "r") as f:
            sizes[spec] = f["episode_0/observations"].id.get_storage_size()
    assert sizes["gzip"] < 0.8 * sizes["none"], sizes


@pytest.mark.parametrize("spec", ["gzip", "lzf"])
def test_only_arrays_from_16_kib_are_compressed(tmp_path, rng, spec):
    # 1000 steps: observations 1001 x 5 float32 = 20 KB and rewards 1000 float64 = 8 KB.
    with EpisodeWriter.create(tmp_path / "c.h5", META, compression=spec) as writer:
        writer.commit(make_episode(rng, 1000))
        writer.commit(make_episode(rng, 20))
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f["episode_0/observations"].compression == spec
        assert f["episode_0/observations"].chunks is not None
        for small in ("episode_0/rewards", "episode_0/actions", "episode_0/infos/pose",
                      "episode_1/observations"):  # fmt: skip
            assert f[small].compression is None and f[small].chunks is None, small
    with open_dataset(tmp_path / "c.h5") as ds:
        assert ds.verify() == []


# ------------------------------------------------------------ writer behaviour
def test_writer_counts_and_sessions(recorded, rng):
    path, _ = recorded
    with EpisodeWriter.resume(path, recording_args={"resume": True}) as writer:
        assert (writer.next_attempt, writer.episode_count) == (5, 4)
        result = writer.commit(make_episode(rng))
        assert (result.committed, result.episode_id, result.attempt) == (True, 4, 5)
    with EpisodeWriter.append(path, META) as writer:
        assert writer.commit(make_episode(rng)).attempt == 6
    with open_dataset(path) as ds:
        assert [s["kind"] for s in ds.sessions] == ["create", "resume", "append"]
        assert ds.sessions[1]["recording_args"] == {"resume": True}
        assert [i.session for i in ds.episode_infos()] == [0, 0, 0, 0, 1, 2]
    with h5py.File(path, "r") as f:
        assert f.attrs["total_episodes"] == 6 and f.attrs["next_attempt"] == 7
    assert not journal_dir(path).exists()


def test_pending_episodes_are_visible_to_readers(tmp_path, rng):
    path = tmp_path / "live.h5"
    writer = EpisodeWriter.create(path, META, merge_overhead=0.0, max_pending=100)
    for _ in range(3):
        writer.commit(make_episode(rng))
    writer.drop(5, "fell")
    with open_dataset(path) as ds:  # a reader during recording (or after a crash)
        assert len(ds) == 3 and ds.pending_episodes >= 2 and ds.verify() == []
        assert ds.next_attempt == 4 and len(ds.dropped_attempts) == 1
    with open_dataset(path, include_journal=False) as ds:
        assert len(ds) < 3
    writer.close()
    with open_dataset(path) as ds:
        assert len(ds) == 3 and ds.pending_episodes == 0


def test_attempts_must_come_in_order(tmp_path, rng):
    path = tmp_path / "order.h5"
    with EpisodeWriter.create(path, META) as writer:
        writer.commit(make_episode(rng, attempt=0))
        for attempt in (0, 2):
            with pytest.raises(errors.AttemptOrderError) as exc:
                writer.commit(make_episode(rng, attempt=attempt))
            one_line(exc, str(path), f"attempt {attempt} out of order", "next attempt is 1")
        with pytest.raises(errors.AttemptOrderError):
            writer.drop(1, "fell", attempt=5)
        assert writer.commit(make_episode(rng, attempt=1)).episode_id == 1
    intact(path, 2)


def test_second_writer_is_refused_while_one_is_open(tmp_path, rng):
    path = tmp_path / "locked.h5"
    with EpisodeWriter.create(path, META) as writer:
        writer.commit(make_episode(rng))
        with pytest.raises(errors.DatasetLockedError) as exc:
            EpisodeWriter.resume(path)
        one_line(exc, str(path), f"pid {os.getpid()}")
    with EpisodeWriter.resume(path) as writer:  # free again once closed
        writer.commit(make_episode(rng))
    intact(path, 2)


def test_closed_writer_refuses_work(tmp_path, rng):
    writer = EpisodeWriter.create(tmp_path / "c.h5", META)
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(errors.WriterClosedError):
        writer.commit(make_episode(rng))


def test_stale_temporaries_and_foreign_entries_are_cleaned(recorded, rng):
    path, _ = recorded
    directory = journal_dir(path)
    directory.mkdir()
    with open_dataset(path) as ds:
        own = ds.metadata.dataset_uuid
    junk = [
        directory / "merge.4242.tmp",  # a merge that was killed
        directory / f"{uuid.uuid4().hex}-0000000005.episode.h5",  # of an overwritten file
        directory / f"{own}-0000000001.episode.h5",  # merged already, not yet deleted
    ]
    for p in junk:
        p.write_bytes(b"junk")
    with EpisodeWriter.resume(path) as writer:
        assert writer.next_attempt == 5 and writer.pending_count == 0
        assert not any(p.exists() for p in junk)
        writer.commit(make_episode(rng))
    intact(path, 5)


# ------------------------------------------------------------------- bad input
def test_nan_and_inf_episodes_are_rejected_counted_and_logged(recorded, rng):
    path, _ = recorded
    nan_obs = make_episode(rng)
    nan_obs.observations[3, 1] = np.nan
    inf_actions = make_episode(rng)
    inf_actions.actions[0, 0] = np.inf
    overflow = make_episode(rng, rewards=np.full(20, 1e300), observations=np.full((21, 5), 1e39))
    with EpisodeWriter.resume(path) as writer:
        results = [writer.commit(e) for e in (nan_obs, inf_actions, overflow)]
        assert writer.commit(make_episode(rng)).episode_id == 4
        assert writer.stats.rejected == 3 and writer.stats.committed == 1
    assert [r.committed for r in results] == [False, False, False]
    assert [r.attempt for r in results] == [5, 6, 7]
    assert results[0].reason == "rejected: non-finite values in observations (1 NaN)"
    assert results[1].reason == "rejected: non-finite values in actions (1 Inf)"
    assert "observations (105 Inf)" in results[2].reason  # too large for float32
    intact(path, 5)
    with open_dataset(path) as ds:
        assert [d.attempt for d in ds.dropped_attempts] == [2, 5, 6, 7]
        assert ds.summary().dropped_reasons == {"fell": 1, "rejected": 3}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"observations": np.zeros((20, 5))}, "observations has shape (20, 5), expected (21, 5)"),
        ({"actions": np.zeros((20, 4))}, "actions has shape (20, 4), expected (20, 3)"),
        ({"rewards": np.zeros(19)}, "rewards has shape (19,), expected (20,)"),
        ({"terminations": np.full(20, 2)}, "terminations must hold only 0/1"),
        ({"actions": np.zeros((0, 3))}, "episode has no actions"),
        ({"actions": np.array([["a"] * 3] * 20)}, "actions has dtype <U1, not a number"),
        ({"seed": 1 << 70}, "does not fit in int64"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"infos": {"x": np.zeros(3)}}, "infos['x'] must be a numeric array of 20 rows"),
        ({"infos": {"a/b": np.zeros(20)}}, "must be non-empty, no '/'"),
    ],
)
def test_malformed_episode_raises_and_writes_nothing(recorded, rng, change, message):
    path, _ = recorded
    with EpisodeWriter.resume(path) as writer:
        with pytest.raises(errors.InvalidEpisodeError) as exc:
            writer.commit(make_episode(rng, **change))
        one_line(exc, str(path), "attempt 5", message)
        assert writer.commit(make_episode(rng)).attempt == 5  # the attempt stayed open
    intact(path, 5)


def test_missing_file(tmp_path):
    for call in (validate, open_dataset, EpisodeWriter.resume):
        with pytest.raises(errors.DatasetNotFoundError) as exc:
            call(tmp_path / "nope.h5")
        one_line(exc, str(tmp_path / "nope.h5"), "no such file")


def test_truncated_file(recorded):
    path, _ = recorded
    cut = path.with_name("cut.h5")
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(errors.TruncatedFileError) as exc:
        validate(cut)
    one_line(exc, str(cut), "truncated HDF5 file")
    with pytest.raises(errors.TruncatedFileError):
        EpisodeWriter.append(cut, META)
    intact(path, 4)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"episode,obs\n1,2\n" * 50, "not an HDF5 file"), (None, "directory")],
)
def test_not_hdf5(tmp_path, content, message):
    path = tmp_path / "walk.h5"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(errors.NotHDF5Error) as exc:
        open_dataset(path)
    one_line(exc, str(path), message)


def test_foreign_hdf5_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(errors.SchemaError) as exc:
        validate(path)
    one_line(exc, str(path), "not a demonstration file")


def set_attr(obj: str, key: str, value: object = None):
    """An edit of an open file: set (or, with None, delete) an attribute of ``obj``."""

    def edit(f: h5py.File) -> None:
        if value is None:
            del f[obj].attrs[key]
        else:
            f[obj].attrs[key] = value

    return edit


def delete(name: str):
    def edit(f: h5py.File) -> None:
        del f[name]

    return edit


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (set_attr("/", "schema_version", 2), errors.SchemaVersionError,
         "schema version 2, but this code reads version 1"),
        (set_attr("/", "env_id"), errors.SchemaError, "missing file attribute 'env_id'"),
        (set_attr("/", "action_space", "{oops"), errors.SchemaError, "unreadable file attributes"),
        (set_attr("episode_1", "checksum"), errors.SchemaError,
         "episode_1: missing attribute 'checksum'"),
        (set_attr("episode_1", "committed", False), errors.SchemaError, "not marked committed"),
        (delete("episode_2/rewards"), errors.SchemaError, "missing dataset 'rewards'"),
        (set_attr("episode_0", "total_steps", 3), errors.SchemaError,
         "observations has shape (21, 5), expected (4, 5)"),
        (lambda f: f.move("episode_3", "episode_9"), errors.SchemaError, "id attribute is 3"),
    ],
)  # fmt: skip
def test_schema_problems(recorded, edit, error, message):
    path, _ = recorded
    with h5py.File(path, "r+") as f:
        edit(f)
    before = path.read_bytes()
    with pytest.raises(error) as exc:
        validate(path)
    one_line(exc, str(path), message)
    with pytest.raises(error):  # a writer refuses it too, and changes nothing
        EpisodeWriter.append(path, META)
    assert path.read_bytes() == before


def test_create_never_overwrites(recorded, rng):
    path, _ = recorded
    before = path.read_bytes()
    with pytest.raises(errors.DatasetExistsError) as exc:
        EpisodeWriter.create(path, META)
    one_line(exc, str(path), "already exists")
    assert path.read_bytes() == before
    intact(path, 4)
    with EpisodeWriter.create(path, META, overwrite=True) as writer:
        writer.commit(make_episode(rng))
    intact(path, 1)


def _other(**changes) -> DatasetMetadata:
    fields = {"env_id": META.env_id, "observation_space": META.observation_space,
              "action_space": META.action_space, **changes}  # fmt: skip
    return DatasetMetadata(**fields)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (_other(env_id="sim/HumanoidWalk-v0"), "the file holds 'sim/HumanoidRun-v0' episodes"),
        (_other(observation_space=SpaceSpec.unbounded((197,))),
         "observation space differs (file (5,) float32, recording (197,) float32)"),
        (_other(action_space=SpaceSpec.unbounded(ACT)), "action space bounds differ"),
    ],
)  # fmt: skip
def test_append_to_incompatible_file(recorded, meta, message):
    path, _ = recorded
    before = path.read_bytes()
    with pytest.raises(errors.IncompatibleDatasetError) as exc:
        EpisodeWriter.append(path, meta)
    one_line(exc, str(path), "cannot append", message)
    assert path.read_bytes() == before


def test_output_directory_missing(tmp_path):
    path = tmp_path / "no" / "such" / "walk.h5"
    with pytest.raises(errors.OutputDirectoryError) as exc:
        EpisodeWriter.create(path, META)
    one_line(exc, str(path), f"directory {path.parent} does not exist")
    assert not path.parent.exists()


def test_output_directory_not_writable(tmp_path, mounted_tmpfs):
    if os.geteuid() == 0:  # root ignores permission bits: use a read-only file system
        context = mounted_tmpfs(tmp_path / "ro", "ro,size=1m")
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        context = contextlib.nullcontext(tmp_path / "ro")
    with context as directory:
        path = directory / "walk.h5"
        with pytest.raises(errors.OutputDirectoryError) as exc:
            EpisodeWriter.create(path, META)
        one_line(exc, str(path), "cannot create walk.h5.journal")
        assert not path.exists()


def test_disk_full_on_a_small_file_system(tmp_path, mounted_tmpfs):
    rng = np.random.default_rng(5)
    with mounted_tmpfs(tmp_path / "small", "size=1m") as directory:
        path = directory / "walk.h5"
        writer = EpisodeWriter.create(path, META, compression="none")
        committed = 0
        with pytest.raises(errors.DiskFullError) as exc:
            for _ in range(1000):  # ~9 kB per episode: the 1 MB file system fills up
                writer.commit(make_episode(rng, 200))
                committed += 1
        one_line(exc, str(path), "disk full while writing episode", f"the {committed} episodes")
        assert committed > 10
        intact(path, committed)  # the file plus the journal hold every committed episode
        with pytest.raises(errors.DiskFullError) as exc:
            writer.close()  # a merge needs room for a copy of the file
        one_line(exc, str(path), "disk full while merging")
        intact(path, committed)
        assert list(directory.rglob("*.tmp")) == []


def test_disk_full_inside_hdf5_during_a_merge(tmp_path, monkeypatch, mounted_tmpfs):
    """ENOSPC in the middle of HDF5's writes: a clean error, no crash, nothing lost."""
    rng = np.random.default_rng(6)
    with mounted_tmpfs(tmp_path / "small", "size=1m") as directory:
        path = directory / "walk.h5"
        ballast = directory / "ballast"
        ballast.write_bytes(bytes(150_000))
        writer = EpisodeWriter.create(path, META, compression="none", merge_overhead=0.0,
                                      max_pending=10_000)  # fmt: skip
        committed = 0
        with pytest.raises(errors.DiskFullError):
            for _ in range(1000):
                writer.commit(make_episode(rng, 200))
                committed += 1
        ballast.unlink()  # room for the copy of the small file, not for all the episodes
        monkeypatch.setattr(writer, "_check_free_space", lambda: None)
        with pytest.raises(errors.DiskFullError) as exc:
            writer.close()
        one_line(exc, str(path), "disk full while merging")
        intact(path, committed)  # h5py still works in this process, and nothing is lost
        assert list(directory.rglob("*.tmp")) == []


def test_disk_full_during_merge_keeps_file_and_journal(recorded, rng, monkeypatch):
    path, _ = recorded

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    writer = EpisodeWriter.resume(path, merge_overhead=0.0, max_pending=2)
    before = path.read_bytes()
    monkeypatch.setattr(writer_module.shutil, "copyfile", full)
    assert writer.commit(make_episode(rng)).committed
    # The second commit makes a merge due; it fails, but the episode is committed.
    assert writer.commit(make_episode(rng)).committed
    assert writer.stats.merge_failures == 1 and "disk full" in writer.stats.merge_error
    with pytest.raises(errors.DiskFullError) as exc:
        writer.flush()
    one_line(exc, str(path), "disk full while merging", "the 6 episodes committed before")
    assert path.read_bytes() == before
    intact(path, 6)
    with pytest.raises(errors.DiskFullError):
        writer.close()
    monkeypatch.undo()
    intact(path, 6)
    with EpisodeWriter.resume(path) as again:  # space is back: the journal is merged
        assert again.pending_count == 0 and again.episode_count == 6
    with open_dataset(path, include_journal=False) as ds:
        assert len(ds) == 6
    assert not journal_dir(path).exists()
