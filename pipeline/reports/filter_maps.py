"""Pictures of what a convolutional policy looks at: its first layer's filters as a grid,
feature maps beside the frame they came from, and a saliency heat map over a frame.

Pure NumPy on arrays the caller computed (``pipeline.stages.visualize`` runs the model); grids
are laid out by the contact sheet's :func:`~pipeline.reports.contact_sheet.tile`.
"""

from __future__ import annotations

import numpy as np

from pipeline.reports.contact_sheet import tile

FILTER_PIXELS = 32
"""Drawn size of one filter: kernels of 3-7 pixels are scaled up by whole pixels."""
MAX_MAPS = 16
"""Feature maps shown per layer and frame (the channels with the largest mean response)."""
COLUMNS = 8
"""Filters per row of the filter grid."""


def upscale(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` (h, w[, c]) resized to (height, width[, c]) by nearest neighbour: every
    pixel stays a visible block instead of being smoothed away."""
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows][:, cols]


def _symmetric(weights: np.ndarray) -> np.ndarray:
    """Weights to uint8 with 0 at mid grey and the largest magnitude at black or white."""
    scale = float(np.abs(weights).max()) or 1.0
    return np.clip(128.0 + 127.0 * weights / scale, 0, 255).astype(np.uint8)


def _unit(values: np.ndarray) -> np.ndarray:
    """Values to uint8 from their minimum (black) to their maximum (white)."""
    low, high = float(values.min()), float(values.max())
    span = high - low or 1.0
    return ((values - low) / span * 255.0).astype(np.uint8)


def _grey(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=-1)


def filter_grid(kernel: np.ndarray, separable: bool = False) -> np.ndarray:
    """The first layer's filters as one uint8 image.

    ``kernel`` is a Conv2D kernel (kh, kw, in_channels, filters): with stacked frames the
    newest frame's three colour channels are the last three, and each filter is drawn as
    the colour pattern it matches in that frame (grey = 0, each filter scaled to its own
    largest weight). A depthwise kernel (``separable``; (kh, kw, in_channels, multiplier))
    has one single-channel pattern per input channel and multiplier, drawn in grey.
    """
    if separable:
        flat = kernel.reshape(*kernel.shape[:2], -1)
        pictures = [_grey(_symmetric(flat[..., i])) for i in range(flat.shape[-1])]
    else:
        newest = kernel[:, :, -3:, :] if kernel.shape[2] >= 3 else kernel
        pictures = [_symmetric(newest[..., i]) for i in range(kernel.shape[-1])]
        pictures = [p if p.shape[-1] == 3 else _grey(p[..., 0]) for p in pictures]
    side = max(FILTER_PIXELS, *kernel.shape[:2])
    pictures = [upscale(p, side, side) for p in pictures]
    rows = [pictures[i : i + COLUMNS] for i in range(0, len(pictures), COLUMNS)]
    return tile(rows)


def strongest_channels(maps: np.ndarray, count: int = MAX_MAPS) -> np.ndarray:
    """Indices of the ``count`` channels of (..., h, w, C) maps with the largest mean
    absolute response, strongest first (the same channels for every frame shown)."""
    strength = np.abs(maps).reshape(-1, maps.shape[-1]).mean(axis=0)
    return np.argsort(-strength, kind="stable")[:count]


def activation_rows(frames: np.ndarray, maps: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """One row per frame: the frame (H, W, 3), then each chosen channel of its feature map
    (h, w) scaled up to the frame's size, black (lowest) to white (highest) per map."""
    height, width = frames.shape[1:3]
    rows = []
    for frame, feature in zip(frames, maps, strict=True):
        row = [frame] + [_grey(upscale(_unit(feature[..., c]), height, width)) for c in channels]
        rows.append(row)
    return tile(rows)


def saliency_overlay(frame: np.ndarray, saliency: np.ndarray) -> np.ndarray:
    """``frame`` in grey with ``saliency`` (H, W, values in [0, 1]) as a red-to-yellow heat
    on top, opaque where it is 1 and absent where it is 0."""
    grey = frame.astype(np.float32).mean(axis=-1, keepdims=True)
    alpha = np.clip(saliency, 0.0, 1.0)[..., None].astype(np.float32)
    heat = np.stack([np.full_like(saliency, 255.0), 255.0 * saliency,
                     np.zeros_like(saliency)], axis=-1).astype(np.float32)  # fmt: skip
    return (grey * (1.0 - alpha) + heat * alpha).astype(np.uint8)


def scaled_saliency(saliency: np.ndarray, low: float = 0.5, high: float = 0.99) -> np.ndarray:
    """Saliency maps of a clip scaled together to [0, 1] between two of their quantiles:
    pixels at or below the median show no heat (the typical pixel moves the actions a
    little), and a few extreme pixels above the 99th percentile do not hide the rest."""
    bottom, top = (float(q) for q in np.quantile(saliency, [low, high]))
    return np.clip((saliency - bottom) / ((top - bottom) or 1.0), 0.0, 1.0)


def enlarged(images: np.ndarray, min_height: int = 96) -> np.ndarray:
    """Images (N, h, w, 3) scaled up by a whole factor to at least ``min_height`` rows, so
    small camera frames stay readable in the pictures."""
    factor = max(1, -(-min_height // images.shape[1]))
    return np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)
