"""The expert policies that ship (as weights) inside the pybullet wheel.

``load_expert("humanoid_walk")`` (and ``humanoid_backflip``, ``humanoid_jump``: one per
skill of :mod:`sim.skills`) reads a DeepMimic PPO actor from its TF1 checkpoint;
``load_expert("humanoid_run")`` reads the roboschool MLP from the array literals of an
example script, parsed with ``ast`` (the script is never imported). Both act in NumPy,
on one observation or a batch, so rollout workers never need TensorFlow: an
:class:`MLPExpert` is plain arrays and pickles cheaply to worker processes.
"""

from __future__ import annotations

import ast
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.assets import checkpoint_path, pybullet_envs_path
from sim.errors import AssetError, UnknownExpertError
from sim.quiet import muted_output
from sim.skills import SKILLS, Skill

RUN_WEIGHTS_SCRIPT = "examples/enjoy_TF_HumanoidBulletEnv_v0_2017may.py"


@dataclass(frozen=True)
class MLPExpert:
    """A ReLU multilayer perceptron with input and output affine normalization.

    ``action = (MLP((obs - obs_mean) / obs_std)) * act_std + act_mean``.
    """

    name: str
    """Registry name of the expert, e.g. ``humanoid_walk``."""
    env_id: str
    """Id of the environment whose observations the expert reads."""
    weights: tuple[np.ndarray, ...]
    """Kernels, one per layer, shaped (inputs, outputs)."""
    biases: tuple[np.ndarray, ...]
    """Biases, one per layer."""
    obs_mean: np.ndarray
    """Subtracted from the observation before the first layer."""
    obs_std: np.ndarray
    """Divides the centred observation."""
    act_mean: np.ndarray
    """Added to the scaled network output."""
    act_std: np.ndarray
    """Scales the network output; also the per-dimension action scale used for noise."""
    source: str = field(default="")
    """File the weights were read from."""

    @property
    def obs_dim(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def act_dim(self) -> int:
        return int(self.weights[-1].shape[1])

    @property
    def action_scale(self) -> np.ndarray:
        """Per-dimension action scale (noise injection is expressed in these units)."""
        return self.act_std

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Expert action(s) for one observation (obs_dim,) or a batch (N, obs_dim)."""
        x = np.asarray(obs, dtype=np.float64)
        if x.shape[-1] != self.obs_dim or x.ndim not in (1, 2):
            raise ValueError(
                f"expert '{self.name}' expects observations of shape ({self.obs_dim},) "
                f"or (N, {self.obs_dim}), got {x.shape}"
            )
        h = (x - self.obs_mean) / self.obs_std
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < last:
                h = np.maximum(h, 0.0)
        return h * self.act_std + self.act_mean

    __call__ = act


def load_deepmimic_expert(skill: Skill) -> MLPExpert:
    """The PPO actor of a DeepMimic skill (197 -> 1024 -> 512 -> 36, ReLU) from its checkpoint."""
    prefix = checkpoint_path(skill.checkpoint)
    # TensorFlow is imported here only: loading is done once in the parent process and
    # the resulting NumPy expert is what workers receive.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's start-up log is noise here
    with muted_output():
        import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except Exception as exc:  # TF raises several types for a corrupt checkpoint
        raise AssetError(f"{prefix}: cannot read TF checkpoint ({exc.__class__.__name__})") from exc

    def tensor(key: str, shape: tuple[int, ...]) -> np.ndarray:
        if not reader.has_tensor(key):
            raise AssetError(f"{prefix}: checkpoint has no tensor '{key}'")
        value = np.asarray(reader.get_tensor(key), dtype=np.float64)
        if value.shape != shape:
            raise AssetError(f"{prefix}: tensor '{key}' has shape {value.shape}, expected {shape}")
        return value

    layers = [("agent/main/actor/0/dense", 197, 1024), ("agent/main/actor/1/dense", 1024, 512),
              ("agent/main/actor/dense", 512, 36)]  # fmt: skip
    return MLPExpert(
        name=skill.expert,
        env_id=skill.env_id,
        weights=tuple(tensor(f"{k}/kernel", (i, o)) for k, i, o in layers),
        biases=tuple(tensor(f"{k}/bias", (o,)) for k, _, o in layers),
        obs_mean=tensor("agent/resource/s_norm/mean", (197,)),
        obs_std=tensor("agent/resource/s_norm/std", (197,)),
        act_mean=tensor("agent/resource/a_norm/mean", (36,)),
        act_std=tensor("agent/resource/a_norm/std", (36,)),
        source=str(prefix),
    )


def _array_literals(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Module-level ``name = np.array(<literal>)`` assignments of a script, without running it."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError) as exc:
        raise AssetError(f"{path}: cannot parse ({exc.__class__.__name__})") from exc
    found: dict[str, np.ndarray] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0]
        if not (isinstance(target, ast.Name) and target.id in names):
            continue
        call = node.value
        if not (isinstance(call, ast.Call) and call.args):
            raise AssetError(f"{path}: '{target.id}' is not an array literal")
        try:
            found[target.id] = np.asarray(ast.literal_eval(call.args[0]), dtype=np.float64)
        except (ValueError, TypeError, SyntaxError) as exc:
            raise AssetError(f"{path}: '{target.id}' is not an array literal") from exc
    missing = [n for n in names if n not in found]
    if missing:
        raise AssetError(f"{path}: missing weight arrays {', '.join(missing)}")
    return found


def _load_run() -> MLPExpert:
    path = pybullet_envs_path(RUN_WEIGHTS_SCRIPT)
    names = ("weights_dense1_w", "weights_dense1_b", "weights_dense2_w", "weights_dense2_b",
             "weights_final_w", "weights_final_b")  # fmt: skip
    a = _array_literals(path, names)
    expected = {"weights_dense1_w": (44, 256), "weights_dense1_b": (256,),
                "weights_dense2_w": (256, 128), "weights_dense2_b": (128,),
                "weights_final_w": (128, 17), "weights_final_b": (17,)}  # fmt: skip
    for key, shape in expected.items():
        if a[key].shape != shape:
            raise AssetError(f"{path}: '{key}' has shape {a[key].shape}, expected {shape}")
    obs_mean = np.zeros(44)
    obs_mean[0] = 0.6  # the original policy shifts the height feature (z - initial z) by -0.6
    return MLPExpert(
        name="humanoid_run",
        env_id="sim/HumanoidRun-v0",
        weights=(a["weights_dense1_w"], a["weights_dense2_w"], a["weights_final_w"]),
        biases=(a["weights_dense1_b"], a["weights_dense2_b"], a["weights_final_b"]),
        obs_mean=obs_mean,
        obs_std=np.ones(44),
        act_mean=np.zeros(17),
        act_std=np.ones(17),
        source=str(path),
    )


_LOADERS: dict[str, Callable[[], MLPExpert]] = {
    **{s.expert: functools.partial(load_deepmimic_expert, s) for s in SKILLS.values()},
    "humanoid_run": _load_run,
}
EXPERT_FOR_ENV = {
    **{s.env_id: s.expert for s in SKILLS.values()},
    "sim/HumanoidRun-v0": "humanoid_run",
}


def expert_names() -> list[str]:
    """Names accepted by :func:`load_expert`."""
    return sorted(_LOADERS)


def load_expert(name: str) -> MLPExpert:
    """Load a shipped expert by name (see :func:`expert_names`)."""
    if name not in _LOADERS:
        raise UnknownExpertError(
            f"unknown expert '{name}': choose one of {', '.join(expert_names())}"
        )
    return _LOADERS[name]()
