"""The demonstration file's schema: key names, version, spaces, episodes and metadata.

One HDF5 file per dataset (Minari-style)::

    /                         attrs: format, schema_version, dataset_uuid, env_id,
                                     env_kwargs, observation_space, action_space, expert_id,
                                     noise_scale, recording_args, package_versions, created,
                                     compression, next_attempt, total_episodes, total_steps
    /episode_<id>/            attrs: id, seed, attempt, session, total_steps, return, fell,
                                     distance, checksum, committed
        observations          (T+1, *obs_shape) float32
        actions               (T, *act_shape) float32, the clean expert label
        executed_actions      (T, *act_shape) float32, optional: what was applied (noise)
        rewards               (T,) float64
        terminations          (T,) bool      (a fall)
        truncations           (T,) bool      (the time limit)
        infos/<key>           (T, ...) optional
        images                (T+1, H, W, 3) uint8, optional: camera frames of the states
                              (files whose root ``camera`` attribute names a camera);
                              chunked one frame per chunk, so a frame reads alone
    /dropped_attempts         (n,) {attempt, seed, reason}: attempts that gave no episode
    /sessions                 (m,) JSON strings: one per create/append/resume

JSON attributes (spaces, kwargs, arguments) are strings so any HDF5 reader can show them.
This module holds only plain data; writing and reading live in ``writer`` and ``reader``.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from typing import Any

import h5py
import numpy as np

SCHEMA_VERSION = 1
"""Bumped whenever a change would make an older reader misread a file."""
FORMAT_NAME = "humanoid-imitation/episodes"
"""Value of the root ``format`` attribute: tells our files from other HDF5 files."""

EPISODE_PREFIX = "episode_"
OBSERVATIONS = "observations"
ACTIONS = "actions"
EXECUTED_ACTIONS = "executed_actions"
REWARDS = "rewards"
TERMINATIONS = "terminations"
TRUNCATIONS = "truncations"
INFOS = "infos"
DROPPED_ATTEMPTS = "dropped_attempts"
SESSIONS = "sessions"
IMAGES = "images"

STEP_KEYS = (ACTIONS, EXECUTED_ACTIONS, REWARDS, TERMINATIONS, TRUNCATIONS)
"""Per-step arrays (length T), in the fixed order the checksum uses after observations."""
STORAGE_DTYPES = {
    OBSERVATIONS: np.dtype("float32"),
    ACTIONS: np.dtype("float32"),
    EXECUTED_ACTIONS: np.dtype("float32"),
    REWARDS: np.dtype("float64"),
    TERMINATIONS: np.dtype("bool"),
    TRUNCATIONS: np.dtype("bool"),
}

FILE_ATTRS = (
    "format",
    "schema_version",
    "dataset_uuid",
    "env_id",
    "env_kwargs",
    "observation_space",
    "action_space",
    "expert_id",
    "noise_scale",
    "recording_args",
    "package_versions",
    "created",
    "compression",
    "next_attempt",
    "total_episodes",
    "total_steps",
)
"""Root attributes every file must have."""
EPISODE_ATTRS = (
    "id",
    "seed",
    "attempt",
    "session",
    "total_steps",
    "return",
    "fell",
    "distance",
    "checksum",
    "committed",
)
"""Attributes every episode group must have; ``committed`` is written last."""

DROPPED_DTYPE = np.dtype([("attempt", "<i8"), ("seed", "<i8"), ("reason", h5py.string_dtype())])
"""Row of the ``dropped_attempts`` table."""


def episode_name(episode_id: int) -> str:
    """Group name of an episode, e.g. ``episode_7`` (Minari's naming, no zero padding)."""
    return f"{EPISODE_PREFIX}{episode_id}"


def parse_episode_name(name: str) -> int | None:
    """The id in ``episode_<id>``, or None for any other name."""
    if not name.startswith(EPISODE_PREFIX):
        return None
    tail = name[len(EPISODE_PREFIX) :]
    return int(tail) if tail.isdigit() else None


def _encode_float(x: float) -> float | str:
    # Strict JSON has no Infinity/NaN; unbounded Box limits are common, so spell them.
    return x if math.isfinite(x) else str(x)


def _encode_bound(values: np.ndarray) -> Any:
    flat = values.astype(np.float64).ravel()
    if flat.size and np.all(flat == flat[0]):
        return _encode_float(float(flat[0]))
    return [_encode_float(float(v)) for v in flat]


def _decode_bound(raw: Any, shape: tuple[int, ...]) -> tuple[float, ...]:
    size = int(np.prod(shape, dtype=np.int64))
    values = [float(raw)] * size if not isinstance(raw, list) else [float(v) for v in raw]
    if len(values) != size:
        raise ValueError(f"bound has {len(values)} values, shape {shape} needs {size}")
    return tuple(values)


@dataclass(frozen=True)
class SpaceSpec:
    """A Box space as plain data, so ``datasets`` needs no gymnasium object."""

    shape: tuple[int, ...]
    """Shape of one observation or action (without the time axis)."""
    dtype: str
    """NumPy dtype name of the space, e.g. ``"float32"``."""
    low: tuple[float, ...]
    """Lower bounds, flattened in C order (``-inf`` for unbounded)."""
    high: tuple[float, ...]
    """Upper bounds, flattened in C order (``inf`` for unbounded)."""

    @classmethod
    def from_space(cls, space: Any) -> SpaceSpec:
        """Build from any object with ``shape``, ``dtype``, ``low`` and ``high`` (a gym Box)."""
        shape = tuple(int(n) for n in space.shape)
        low = np.broadcast_to(np.asarray(space.low, dtype=np.float64), shape)
        high = np.broadcast_to(np.asarray(space.high, dtype=np.float64), shape)
        return cls(shape, np.dtype(space.dtype).name, tuple(low.ravel()), tuple(high.ravel()))

    @classmethod
    def unbounded(cls, shape: tuple[int, ...], dtype: str = "float32") -> SpaceSpec:
        """A space with infinite bounds (handy for synthetic data and tests)."""
        size = int(np.prod(shape, dtype=np.int64))
        return cls(tuple(shape), dtype, (-math.inf,) * size, (math.inf,) * size)

    def to_json(self) -> str:
        """JSON text with scalar bounds when all bounds are equal."""
        return json.dumps(
            {
                "shape": list(self.shape),
                "dtype": self.dtype,
                "low": _encode_bound(np.asarray(self.low)),
                "high": _encode_bound(np.asarray(self.high)),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SpaceSpec:
        """Inverse of :meth:`to_json`."""
        raw = json.loads(text)
        shape = tuple(int(n) for n in raw["shape"])
        return cls(
            shape,
            str(raw["dtype"]),
            _decode_bound(raw["low"], shape),
            _decode_bound(raw["high"], shape),
        )

    def describe(self) -> str:
        """Short text for error messages, e.g. ``(197,) float32``."""
        return f"{self.shape} {self.dtype}"


@dataclass(frozen=True)
class CameraSpec:
    """The camera of a recording with images: frame size and where it looks from."""

    width: int
    """Frame width, pixels."""
    height: int
    """Frame height, pixels."""
    view: str = "follow"
    """``follow`` (behind the character) or ``side``."""

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(height, width, 3): the shape of one stored frame."""
        return (self.height, self.width, 3)

    def to_json(self) -> str:
        return json.dumps({"width": self.width, "height": self.height, "view": self.view})

    @classmethod
    def from_json(cls, text: str) -> CameraSpec | None:
        data = json.loads(text)
        if data is None:
            return None
        return cls(int(data["width"]), int(data["height"]), str(data["view"]))

    def describe(self) -> str:
        return f"{self.width}x{self.height} {self.view}"


@dataclass(frozen=True)
class DatasetMetadata:
    """What a recording says about itself; stored as root attributes of the file."""

    env_id: str
    """Gymnasium id of the environment, e.g. ``sim/HumanoidWalk-v0``."""
    observation_space: SpaceSpec
    """Space of one observation."""
    action_space: SpaceSpec
    """Space of one action."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments given to ``gym.make`` (JSON-serialisable)."""
    expert_id: str | None = None
    """Name of the expert that produced the actions, if any."""
    noise_scale: float = 0.0
    """DART noise scale of the recording (0 = clean expert)."""
    recording_args: dict[str, Any] = field(default_factory=dict)
    """The arguments of the recording command (JSON-serialisable)."""
    schema_version: int = SCHEMA_VERSION
    """Schema version of the file (set by the writer)."""
    created: str = ""
    """UTC creation time, ISO 8601 (set by the writer)."""
    package_versions: dict[str, str] = field(default_factory=dict)
    """Versions of python, numpy, h5py, hdf5, pybullet, gymnasium (set by the writer)."""
    dataset_uuid: str = ""
    """Random id of this file; ties journal entries to it (set by the writer)."""
    compression: str = ""
    """Compression of the episode arrays, e.g. ``gzip:4`` (set by the writer)."""
    camera: CameraSpec | None = None
    """The camera whose frames every episode stores as ``images``; None: no images."""

    def to_attrs(self) -> dict[str, Any]:
        """Root attributes (without the counters, which the writer maintains)."""
        return {
            "format": FORMAT_NAME,
            "schema_version": self.schema_version,
            "dataset_uuid": self.dataset_uuid,
            "env_id": self.env_id,
            "env_kwargs": json.dumps(self.env_kwargs, sort_keys=True),
            "observation_space": self.observation_space.to_json(),
            "action_space": self.action_space.to_json(),
            "expert_id": self.expert_id or "",
            "noise_scale": float(self.noise_scale),
            "recording_args": json.dumps(self.recording_args, sort_keys=True, default=str),
            "package_versions": json.dumps(self.package_versions, sort_keys=True),
            "created": self.created,
            "compression": self.compression,
            # Optional: files without it (and readers that predate it) hold no images.
            "camera": self.camera.to_json() if self.camera else "",
        }

    @classmethod
    def from_attrs(cls, attrs: Any) -> DatasetMetadata:
        """Read back from root attributes (an ``h5py`` AttributeManager or a dict)."""
        return cls(
            env_id=str(attrs["env_id"]),
            observation_space=SpaceSpec.from_json(str(attrs["observation_space"])),
            action_space=SpaceSpec.from_json(str(attrs["action_space"])),
            env_kwargs=json.loads(str(attrs["env_kwargs"])),
            expert_id=str(attrs["expert_id"]) or None,
            noise_scale=float(attrs["noise_scale"]),
            recording_args=json.loads(str(attrs["recording_args"])),
            schema_version=int(attrs["schema_version"]),
            created=str(attrs["created"]),
            package_versions=json.loads(str(attrs["package_versions"])),
            dataset_uuid=str(attrs["dataset_uuid"]),
            compression=str(attrs["compression"]),
            camera=CameraSpec.from_json(str(attrs.get("camera", "")) or "null"),
        )


@dataclass
class Episode:
    """One finished episode as in-memory arrays, ready to be committed."""

    observations: np.ndarray
    """(T+1, *obs_shape): from the reset observation to the last one."""
    actions: np.ndarray
    """(T, *act_shape): the clean expert action (the label)."""
    rewards: np.ndarray
    """(T,) reward after each action."""
    terminations: np.ndarray
    """(T,) True where the episode ended in a fall."""
    truncations: np.ndarray
    """(T,) True where the episode hit its time limit."""
    seed: int
    """Seed given to ``env.reset``."""
    executed_actions: np.ndarray | None = None
    """(T, *act_shape) the action actually applied (expert + noise), if it differs."""
    infos: dict[str, np.ndarray] = field(default_factory=dict)
    """Extra per-step arrays, each of length T (e.g. reward terms)."""
    images: np.ndarray | None = None
    """(T+1, H, W, 3) uint8 camera frames, one per observation (files with a camera)."""
    attempt: int | None = None
    """Attempt index; None lets the writer use its next attempt."""
    fell: bool | None = None
    """Whether the expert fell; None means "the last step is a termination"."""
    distance: float = math.nan
    """Forward distance covered, metres (NaN when unknown)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent producing the episode, by part (e.g. ``rollout``, ``relabel``); not
    stored."""

    @property
    def total_steps(self) -> int:
        """Number of actions T."""
        return len(self.actions)

    @property
    def episode_return(self) -> float:
        """Undiscounted return."""
        return float(np.sum(np.asarray(self.rewards, dtype=np.float64)))


@dataclass(frozen=True)
class EpisodeInfo:
    """The attributes of a stored episode (readable without touching its arrays)."""

    id: int
    """Episode id: its position in commit order, 0-based."""
    seed: int
    """Seed given to ``env.reset``."""
    attempt: int
    """Attempt index that produced it."""
    session: int
    """Index into the file's ``sessions`` log (which create/append/resume wrote it)."""
    total_steps: int
    """Number of actions T."""
    episode_return: float
    """Undiscounted return."""
    fell: bool
    """Whether the expert fell."""
    distance: float
    """Forward distance covered, metres (NaN when unknown)."""
    checksum: str
    """``sha256:<hex>`` over the episode's arrays (see ``datasets.store.checksum``)."""

    @classmethod
    def from_attrs(cls, attrs: Any) -> EpisodeInfo:
        """Read from an episode group's attributes."""
        return cls(
            id=int(attrs["id"]),
            seed=int(attrs["seed"]),
            attempt=int(attrs["attempt"]),
            session=int(attrs["session"]),
            total_steps=int(attrs["total_steps"]),
            episode_return=float(attrs["return"]),
            fell=bool(attrs["fell"]),
            distance=float(attrs["distance"]),
            checksum=str(attrs["checksum"]),
        )


@dataclass(frozen=True)
class DroppedAttempt:
    """An attempt that produced no stored episode, and why."""

    attempt: int
    """Attempt index."""
    seed: int
    """Seed the attempt used."""
    reason: str
    """Why it was dropped, e.g. ``fell`` or ``rejected: non-finite values in actions``."""


def installed_version(name: str) -> str | None:
    """The installed version of the distribution ``name``; None when it is not installed."""
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the file's contents."""
    versions = {"python": platform.python_version(), "hdf5": h5py.version.hdf5_version}
    for name in ("numpy", "h5py", "pybullet", "gymnasium"):
        versions[name] = installed_version(name) or "not installed"
    return versions


def utc_now() -> str:
    """Current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_CHUNK_BYTES = 1 << 16
"""Target chunk size: small enough to read one episode slice cheaply, large enough to compress."""

_SMALL_ARRAY_BYTES = 1 << 14
"""Arrays smaller than this are stored contiguous and unfiltered. Measured on 3-s walk
episodes (16 arrays, the observations 55 KB, the rest 0.1-10 KB): compressing every array
made the file 20% larger than compressing none (each chunked array pays for its chunk
index, and a few hundred floats barely compress) and took 2.3x the CPU per commit;
compressing only the arrays from 16 KiB up gave the smallest file, 8% under none."""


@dataclass(frozen=True)
class Compression:
    """How episode arrays are stored: ``gzip[:level]``, ``lzf`` or ``none``; arrays under
    16 KiB stay uncompressed whatever the setting (``_SMALL_ARRAY_BYTES`` says why)."""

    name: str = "gzip"
    """``gzip``, ``lzf`` or ``none`` (contiguous, uncompressed)."""
    level: int | None = 4
    """gzip level 0-9 (ignored by the others)."""

    @classmethod
    def parse(cls, spec: str | Compression) -> Compression:
        """Parse ``"gzip"``, ``"gzip:9"``, ``"lzf"`` or ``"none"``."""
        if isinstance(spec, Compression):
            return spec
        name, _, level = spec.strip().lower().partition(":")
        if name == "gzip":
            if level and not (level.isdigit() and 0 <= int(level) <= 9):
                raise ValueError(f"gzip level must be 0-9, got {level!r}")
            return cls("gzip", int(level) if level else 4)
        if name in ("lzf", "none") and not level:
            return cls(name, None)
        raise ValueError(f"unknown compression {spec!r}; use gzip, gzip:<0-9>, lzf or none")

    def __str__(self) -> str:
        return f"gzip:{self.level}" if self.name == "gzip" else self.name

    def dataset_kwargs(
        self, shape: tuple[int, ...], dtype: np.dtype, rows: int | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for ``create_dataset`` of an array of this shape and dtype;
        ``rows`` fixes the rows per chunk (1 for images: a frame reads alone)."""
        # Timestamps in object headers would make identical recordings differ byte-wise.
        kwargs: dict[str, Any] = {"track_times": False}
        if self.name == "none" or not shape or shape[0] == 0:
            return kwargs
        small = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize < _SMALL_ARRAY_BYTES
        if small and rows is None:
            return kwargs
        row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)
        rows = rows or max(1, min(shape[0], _CHUNK_BYTES // row_bytes))
        kwargs["chunks"] = (rows, *shape[1:])
        # Shuffle groups the bytes of floats by significance, which gzip/lzf compress better.
        kwargs["shuffle"] = True
        kwargs["compression"] = self.name
        if self.name == "gzip":
            kwargs["compression_opts"] = self.level
        return kwargs
