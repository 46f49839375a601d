"""Write a Keras policy in a format other runtimes load: TensorFlow SavedModel, ONNX, LiteRT.

Every format starts from Keras 3's own export machinery (``model.export`` and its
``ExportArchive``); the old converters (``tf2onnx.convert.from_keras``,
``TFLiteConverter.from_keras_model``) fail on Keras 3. The exported model is the whole saved
policy: raw observations (and uint8 frames) in, raw actions out, normalization inside.

ONNX needs one repair. Keras' ONNX export hands tf2onnx a function whose captured
*constants* (our ``Normalization`` layers keep their mean and variance as constant tensors,
not variables) tf2onnx lists as extra graph inputs, so the file asks callers to feed the
statistics. We trace the same ``ExportArchive`` endpoint, convert it with tf2onnx as Keras
does, and turn those inputs into initializers holding the captured values.

``quantize="int8"`` (LiteRT only) stores the weights as int8 and computes in float (dynamic
range quantization). Full-integer quantization, activations included, was measured on the
walk policy at 0.5 action standard deviations of error on recorded states against 0.005 for
int8 weights, so it is not offered.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.spec import IMAGE_INPUT, PolicySpec

FORMATS = ("saved_model", "onnx", "litert")
"""Export formats, as ``pipeline policy export --format`` names them."""
QUANTIZATIONS = ("int8",)
"""Quantizations (LiteRT only)."""
MODEL_NAMES = {"saved_model": "saved_model", "onnx": "model.onnx", "litert": "model.tflite"}
"""The exported model's name inside an export directory (SavedModel is a directory)."""
_KERAS_FORMAT = {"saved_model": "tf_saved_model", "onnx": "onnx", "litert": "litert"}
_RUNTIME_MODULES = {
    "onnx": (("tf2onnx", "tf2onnx"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime")),
    "litert": (("ai_edge_litert", "ai-edge-litert"),),
}
"""(module, pip package) pairs a format needs beyond TensorFlow, to write and to run it."""
EXTRA = "export"
"""The package extra that installs every runtime (``pip install -e '.[export]'``)."""


def missing_packages(fmt: str) -> list[str]:
    """The pip packages ``fmt`` needs that are not installed (nothing is imported)."""
    missing = []
    for module, package in _RUNTIME_MODULES.get(fmt, ()):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None or without a spec
            found = False
        if not found:
            missing.append(package)
    return missing


def input_signature(model: Any, spec: PolicySpec) -> list[Any]:
    """One ``tf.TensorSpec`` per model input (named as the spec names them, batch free),
    nested as the model's ``__call__`` takes them: a list for a policy with several inputs."""
    import tensorflow as tf

    specs = [
        tf.TensorSpec((None, *shape), tf.uint8 if name == IMAGE_INPUT else tf.float32, name=name)
        for name, shape in spec.input_shapes.items()
    ]
    if len(specs) != len(model.inputs):
        raise ValueError(f"the model has {len(model.inputs)} inputs, the spec {len(specs)}")
    return [specs] if len(specs) > 1 else specs


def write_export(model: Any, spec: PolicySpec, fmt: str, path: Path,
                 quantize: str | None = None) -> None:  # fmt: skip
    """Write ``model`` to ``path`` (a file, or a directory for SavedModel) in ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if quantize is not None and (quantize not in QUANTIZATIONS or fmt != "litert"):
        raise ValueError(f"quantization {quantize!r} is offered for litert only (int8)")
    signature = input_signature(model, spec)
    if fmt == "onnx":
        _write_onnx(model, signature, path)
        return
    options: dict[str, Any] = {}
    if quantize == "int8":
        import tensorflow as tf

        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    model.export(str(path), format=_KERAS_FORMAT[fmt], input_signature=signature,
                 verbose=False, **options)  # fmt: skip


def _write_onnx(model: Any, signature: Sequence[Any], path: Path) -> None:
    import keras
    import tensorflow as tf
    import tf2onnx
    from onnx import numpy_helper

    archive = keras.export.ExportArchive()
    endpoint = archive.track_and_add_endpoint("serve", model, signature)
    proto, _ = tf2onnx.convert.from_function(endpoint, signature)
    captured = {
        inner.name: outer
        for outer, inner in endpoint.get_concrete_function(*signature).graph.captures
        if outer.dtype != tf.resource
    }
    used = {name for node in proto.graph.node for name in node.input}
    for graph_input in list(proto.graph.input):
        if graph_input.name not in captured:
            continue
        proto.graph.input.remove(graph_input)
        if graph_input.name in used:
            value = captured[graph_input.name].numpy()
            proto.graph.initializer.append(numpy_helper.from_array(value, graph_input.name))
    path.write_bytes(proto.SerializeToString())
