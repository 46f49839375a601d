"""``pipeline visualize``: what an image policy's convolutions look at.

For a policy that sees camera frames (``model.name: cnn2d``) and a recording made with the
same camera, writes

- ``filters.png``: the first convolution's filters (the colour pattern each matches in the
  newest frame; grey is 0);
- ``activations_<layer>.png`` for every convolution: a few frames of one episode, each
  beside the feature maps of its strongest channels;
- ``saliency.png`` and ``saliency.gif``: over a short clip, how strongly each pixel moves
  the actions - the norm of the Jacobian of the z-scored actions with respect to the
  pixels (summed over colours and stacked frames), drawn as heat over the newest frame;

and logs them to the policy's MLflow training run (artifact folder ``visualize``).

Gradients need float pixels, and the saved policy takes uint8 frames: the saliency is
computed on a twin of the policy built from its config with a float image input and the
same weights (``build_policy(image_dtype="float32")``), checked to give the same actions.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_dir
from pipeline.core.recorded_inputs import episode_inputs
from pipeline.core.run_files import POLICY_DIR

if TYPE_CHECKING:
    from datasets import Dataset
    from models import LoadedPolicy

CONV_LAYERS = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")
"""Layer classes whose filters and feature maps are shown."""
OUT_DIR = "visualize"
"""Folder of the pictures in a training run directory and in its MLflow run."""
SALIENCY_CHUNK = 16
"""Frames per Jacobian: 36 actions x 2 stacked 64x64 frames x 16 frames are ~60 MB."""


@dataclass(frozen=True)
class VisualizeRequest:
    """What to show and where."""

    policy: str
    """Policy directory, training run directory or MLflow URI of an image policy."""
    data: Path
    """A recording made with the policy's camera (``pipeline record --camera``)."""
    out: Path | None = None
    """Folder for the pictures (default: ``visualize`` in the policy's run directory)."""
    episode: int | None = None
    """Episode of ``data`` to show (default: its first)."""
    frames: int = 4
    """Frames whose feature maps are shown, evenly spaced over the clip."""
    clip_steps: int = 60
    """Steps of the episode in the saliency clip (from its start)."""


@dataclass
class VisualizeResult:
    """What was written."""

    out: Path
    files: list[Path] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    """The convolution layers shown, input side first."""
    logged_run: str | None = None
    """The MLflow run the pictures went to, if any."""


def check_request(request: VisualizeRequest) -> None:
    """The checks that need no model: the data file and the output folder."""
    if not request.data.is_file():
        raise PipelineError(f"--data {request.data}: file not found")
    for option, value in (("--frames", request.frames), ("--clip-steps", request.clip_steps)):
        if value < 1:
            raise PipelineError(f"{option}: must be at least 1, got {value}")
    if request.out is not None:
        _check_out(request.out)


def _check_out(out: Path) -> None:
    check_output_dir(out, "--out")
    if out.exists() and any(out.iterdir()):
        raise PipelineError(f"--out {out}: exists and is not empty; choose another --out")


def conv_layers(model: Any) -> list[Any]:
    """The image convolution layers of ``model``, input side first."""
    return [layer for layer in model.layers if type(layer).__name__ in CONV_LAYERS]


def _check_policy(loaded: LoadedPolicy, text: str) -> list[Any]:
    layers = conv_layers(loaded.model)
    if not layers or loaded.spec.camera is None:
        raise PipelineError(
            f"--policy {text}: has no image convolution layers to show (visualize needs a "
            "policy that sees camera frames: model.name cnn2d)"
        )
    return layers


def _check_data(ds: Dataset, loaded: LoadedPolicy, request: VisualizeRequest) -> int:
    """The episode to show, after checking the file fits the policy."""
    camera, wanted = ds.metadata.camera, loaded.spec.camera
    assert wanted is not None
    where = f"--data {request.data}"
    if ds.metadata.env_id != loaded.spec.env_id:
        raise PipelineError(f"{where}: recorded in {ds.metadata.env_id}; the policy drives "
                            f"{loaded.spec.env_id}")  # fmt: skip
    if camera is None:
        raise PipelineError(f"{where}: has no camera frames (record with --camera "
                            f"{wanted.width}x{wanted.height})")  # fmt: skip
    if camera.frame_shape != wanted.frame_shape:
        raise PipelineError(
            f"{where}: frames are {camera.width}x{camera.height}; the policy sees "
            f"{wanted.width}x{wanted.height} (record with --camera {wanted.width}x{wanted.height})"
        )
    ids = ds.episode_ids()
    episode = ids[0] if request.episode is None else request.episode
    if episode not in ids:
        raise PipelineError(f"--episode {episode}: {request.data} has episodes "
                            f"{ids[0]}-{ids[-1]}")  # fmt: skip
    return episode


def clip_inputs(ds: Dataset, episode: int, spec: Any, steps: int) -> dict[str, np.ndarray]:
    """The policy's inputs for the first ``steps`` states of ``episode`` (windows of the
    last K frames and observations, the episode start repeated), keyed by input name."""
    return episode_inputs(ds.episode(episode), spec, steps)


def newest_frames(images: np.ndarray, history: int) -> np.ndarray:
    """The current frame of each input window."""
    return images if history == 1 else images[:, -1]


def _call(model: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    x = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    return np.asarray(model(x, training=False))


def float_twin(loaded: LoadedPolicy) -> Any:
    """The policy to its z-scored actions, built again with a float image input and the
    saved weights; checked against the saved policy."""
    import keras

    from models import build_policy
    from models.config import parse_model_config
    from models.registry import normalized_action_output
    from models.spec import IMAGE_INPUT

    config = parse_model_config(loaded.config.get("model", loaded.config))
    twin = build_policy(config, loaded.spec, image_dtype="float32").policy
    for layer in twin.layers:
        if layer.weights:
            layer.set_weights(loaded.model.get_layer(layer.name).get_weights())
    probe = loaded.spec.example_inputs(rows=2)
    probe = probe if isinstance(probe, dict) else {IMAGE_INPUT: probe}
    if not np.allclose(_call(twin, probe), _call(loaded.model, probe), rtol=1e-4, atol=1e-4):
        raise PipelineError("the float twin of the policy disagrees with it (a bug)")
    return keras.Model(twin.inputs, normalized_action_output(twin))


def saliency_maps(model: Any, inputs: dict[str, np.ndarray], history: int) -> np.ndarray:
    """(N, H, W) norm of the Jacobian of the z-scored actions with respect to the pixels of
    each input's frames (colours and stacked frames summed)."""
    import tensorflow as tf

    from models.spec import IMAGE_INPUT

    maps = []
    count = len(inputs[IMAGE_INPUT])
    for start in range(0, count, SALIENCY_CHUNK):
        part = {k: tf.constant(v[start : start + SALIENCY_CHUNK], tf.float32)
                for k, v in inputs.items()}  # fmt: skip
        with tf.GradientTape() as tape:
            tape.watch(part[IMAGE_INPUT])
            x = part if len(part) > 1 else part[IMAGE_INPUT]
            actions = model(x, training=False)
        jacobian = tape.batch_jacobian(actions, part[IMAGE_INPUT]).numpy()  # (n, A, ..., 3)
        squared = (jacobian.astype(np.float64) ** 2).sum(axis=(1, -1))  # actions, colours
        if history > 1:
            squared = squared.sum(axis=1)  # the stacked frames
        maps.append(np.sqrt(squared))
    return np.concatenate(maps).astype(np.float32)


def _write(path: Path, image: np.ndarray, result: VisualizeResult) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, image)
    result.files.append(path)


def default_out(resolved: Any) -> Path:
    """``visualize`` in the policy's run directory; for a policy downloaded from MLflow, in
    the working directory, named after its run."""
    directory = Path(resolved.loaded.directory)
    if resolved.download_dir is None and directory.name == POLICY_DIR:
        return directory.parent / OUT_DIR
    return Path(f"{OUT_DIR}-{resolved.training_run_id or directory.name}")


def visualize(request: VisualizeRequest, lookup_uri: str | None = None,
              track: bool = True) -> VisualizeResult:  # fmt: skip
    """Write the pictures (module docstring) and log them to the policy's training run
    when it has one and ``track``."""
    from pipeline.rollout.policy_source import resolve_policy_source

    check_request(request)
    resolved = resolve_policy_source(request.policy, lookup_uri)
    try:
        return _visualize(request, resolved, track)
    finally:
        if resolved.download_dir is not None:
            shutil.rmtree(resolved.download_dir, ignore_errors=True)


def _visualize(request: VisualizeRequest, resolved: Any, track: bool) -> VisualizeResult:
    from datasets import open_dataset
    from models.spec import IMAGE_INPUT
    from pipeline.reports.contact_sheet import tile
    from pipeline.reports.filter_maps import (
        activation_rows,
        enlarged,
        filter_grid,
        saliency_overlay,
        scaled_saliency,
        strongest_channels,
    )
    from pipeline.rollout.episodes import beside
    from pipeline.rollout.video import VideoWriter

    loaded = resolved.loaded
    layers = _check_policy(loaded, request.policy)
    spec = loaded.spec
    with open_dataset(request.data) as ds:
        episode = _check_data(ds, loaded, request)
        out = request.out or default_out(resolved)
        _check_out(out)
        inputs = clip_inputs(ds, episode, spec, request.clip_steps)
    import keras

    out.mkdir(parents=True, exist_ok=True)
    result = VisualizeResult(out=out, layers=[layer.name for layer in layers])
    first = layers[0]
    separable = type(first).__name__ != "Conv2D"
    kernel = first.depthwise_kernel if type(first).__name__ == "SeparableConv2D" else first.kernel
    _write(out / "filters.png", filter_grid(np.asarray(kernel), separable), result)

    frames = enlarged(newest_frames(inputs[IMAGE_INPUT], spec.history))
    picks = np.unique(np.linspace(0, len(frames) - 1, request.frames).round().astype(int))
    shown = {name: value[picks] for name, value in inputs.items()}
    probe = keras.Model(loaded.model.inputs, [layer.output for layer in layers])
    x = shown if len(shown) > 1 else shown[IMAGE_INPUT]
    maps = probe(x, training=False)
    for layer, feature in zip(layers, maps if len(layers) > 1 else [maps], strict=True):
        feature = np.asarray(feature)
        rows = activation_rows(frames[picks], feature, strongest_channels(feature))
        _write(out / f"activations_{layer.name}.png", rows, result)

    saliency = scaled_saliency(saliency_maps(float_twin(loaded), inputs, spec.history))
    saliency = enlarged(saliency[..., None])[..., 0]
    overlays = [saliency_overlay(f, s) for f, s in zip(frames, saliency, strict=True)]
    _write(out / "saliency.png", tile([[frames[i], overlays[i]] for i in picks]), result)
    gif = out / "saliency.gif"
    with VideoWriter(gif, fps=15.0) as writer:
        for frame, overlay in zip(frames, overlays, strict=True):
            writer.append(beside(frame, overlay))
    result.files.append(gif)
    run_id = resolved.training_run_id
    if track and run_id and resolved.tracking_uri:
        from pipeline.tracking import open_tracker

        with open_tracker(resolved.tracking_uri, resume_run_id=run_id) as tracker:
            for path in result.files:
                tracker.log_artifact(path, OUT_DIR)
        result.logged_run = run_id
    return result
