"""Where an image's pixels land in a network input, and back: the resize rules (pure Python/NumPy).

Each preprocessing model (a ``dali.py`` generated from an ensemble spec) resizes the decoded image by
one of four rules; the post-processing maps boxes and masks back to the original pixels with the
same rule. The rules are stated here once; the generated pipelines transliterate them into DALI
arithmetic, and ``tests/unit/models/test_torchvision_crop.py`` runs both on sizes that hit every rounding tie.

- ``shorter-crop`` (torchvision ``Resize(shorter)`` + ``CenterCrop(size)``): the shorter side becomes
  ``shorter``, the longer ``int(shorter * longer / shorter_side)`` (truncated, as torchvision
  computes it); the crop starts at ``round((resized - size) / 2)`` with Python's ``round``
  (halves to even), as torchvision's ``CenterCrop`` does.
- ``stretch``: the whole image is resized to ``size`` (aspect not kept).
- ``letterbox``: the image is scaled by ``min(H / h, W / w)`` (each side rounded half up, at least 1
  pixel) and placed in a ``size`` canvas, at its top-left corner or centred (offset
  ``(canvas - resized) // 2``); the rest is padding.
- ``keep-aspect`` (torchvision's ``GeneralizedRCNNTransform``): scale
  ``min(min_size / shorter_side, max_size / longer_side)``, each side ``floor(side * scale)`` in
  float64; the network input has the image's own size, zero-padded bottom/right up to multiples of
  ``size_divisible`` (1: none; an FPN detector's 32), and a batch further to its largest image.

A network input pixel ``(y, x)`` shows the resized image's pixel ``(y - offset_y, x - offset_x)``;
a resized pixel ``(y, x)`` covers the original's ``(y * H0 / h1, x * W0 / w1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from .model_config import ModelConfig

SHORTER_CROP = "shorter-crop"
STRETCH = "stretch"
LETTERBOX = "letterbox"
KEEP_ASPECT = "keep-aspect"
RESIZE_MODES = (SHORTER_CROP, STRETCH, LETTERBOX, KEEP_ASPECT)
TOP_LEFT = "top-left"
CENTER = "center"
PAD_POSITIONS = (TOP_LEFT, CENTER)

Size = tuple[int, int]  # (height, width)


def round_half_even(value: float) -> int:
    """Python's ``round`` (torchvision's CenterCrop uses it): 79.5 -> 80, 58.5 -> 58."""
    return int(round(value))


def round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


@dataclass(frozen=True)
class Placement:
    """How one image sits in the network input."""

    original: Size  # decoded image (H0, W0)
    resized: Size  # the whole image after resizing (h1, w1)
    offset: tuple[int, int]  # where the resized image's top-left pixel lands in the network input
    network: Size  # the network input's (H, W)

    @property
    def scale(self) -> tuple[float, float]:
        """Original pixels per resized pixel, (y, x)."""
        return self.original[0] / self.resized[0], self.original[1] / self.resized[1]

    @property
    def visible(self) -> tuple[Size, Size]:
        """The network-input rows [y0, y1) and columns [x0, x1) that show the image (not padding)."""
        y0 = max(0, self.offset[0])
        x0 = max(0, self.offset[1])
        y1 = min(self.network[0], self.offset[0] + self.resized[0])
        x1 = min(self.network[1], self.offset[1] + self.resized[1])
        return (y0, y1), (x0, x1)


@dataclass(frozen=True)
class ResizeRule:
    """One of :data:`RESIZE_MODES` with its sizes (the ``[preprocess]`` table of an ensemble spec)."""

    mode: str
    size: Size | None = None  # the network input's (H, W); None for keep-aspect (free dims)
    shorter: int | None = None  # shorter-crop: the shorter side before the crop
    min_size: float | None = None  # keep-aspect
    max_size: float | None = None  # keep-aspect
    pad: str = TOP_LEFT  # letterbox: where the image sits in the canvas
    size_divisible: int = 1  # keep-aspect: the network input's sides are multiples of it (padding)

    def __post_init__(self) -> None:
        if self.mode not in RESIZE_MODES:
            raise ConfigError(f"resize must be one of {', '.join(RESIZE_MODES)}, got '{self.mode}'")
        if self.mode != KEEP_ASPECT and self.size is None:
            raise ConfigError(f"resize '{self.mode}' needs size = [height, width]")
        if self.mode == SHORTER_CROP and (self.shorter is None or self.size is None or self.shorter < max(self.size)):
            raise ConfigError(
                f"resize 'shorter-crop' needs shorter >= the crop's larger side, got shorter {self.shorter} "
                f"and size {list(self.size or ())}"
            )
        if self.mode == KEEP_ASPECT and (self.min_size is None or self.max_size is None):
            raise ConfigError("resize 'keep-aspect' needs min_size and max_size")
        if self.pad not in PAD_POSITIONS:
            raise ConfigError(f"pad must be one of {', '.join(PAD_POSITIONS)}, got '{self.pad}'")
        if self.size_divisible < 1 or (self.size_divisible != 1 and self.mode != KEEP_ASPECT):
            raise ConfigError(
                f"size_divisible must be a whole number >= 1, and other than 1 for keep-aspect only, got "
                f"{self.size_divisible} for '{self.mode}'"
            )

    @property
    def network(self) -> Size:
        """The network input's fixed (H, W) (0, 0 for keep-aspect: the image's own size)."""
        return self.size if self.size is not None else (0, 0)

    def padded(self, resized: Size) -> Size:
        """keep-aspect: the network input of one image, its resized sides rounded up to ``size_divisible``."""
        step = self.size_divisible
        return -(-int(resized[0]) // step) * step, -(-int(resized[1]) // step) * step

    # -- the rules ----------------------------------------------------------------------------
    def resized_size(self, original: Size) -> Size:
        """The size the whole image is resized to (before any crop or padding)."""
        height, width = int(original[0]), int(original[1])
        net_h, net_w = self.network
        if self.mode == SHORTER_CROP:
            shorter = int(self.shorter or 0)
            short, long = min(height, width), max(height, width)
            other = int(shorter * long / short)
            return (shorter, other) if height <= width else (other, shorter)
        if self.mode == STRETCH:
            return net_h, net_w
        if self.mode == LETTERBOX:
            scale = min(net_h / height, net_w / width)
            return min(net_h, max(1, round_half_up(height * scale))), min(net_w, max(1, round_half_up(width * scale)))
        scale = min(float(self.min_size or 0) / min(height, width), float(self.max_size or 0) / max(height, width))
        return int(math.floor(height * scale)), int(math.floor(width * scale))

    def offset(self, resized: Size) -> tuple[int, int]:
        """Where the resized image's top-left pixel lands in the network input."""
        net_h, net_w = self.network
        if self.mode == SHORTER_CROP:
            return -round_half_even((resized[0] - net_h) / 2.0), -round_half_even((resized[1] - net_w) / 2.0)
        if self.mode == LETTERBOX and self.pad == CENTER:
            return (net_h - resized[0]) // 2, (net_w - resized[1]) // 2
        return 0, 0

    def placement(self, original: Size, resized: Size | None = None) -> Placement:
        """Where ``original``'s pixels land; ``resized`` as the preprocessing reported it, if at hand."""
        got = resized if resized is not None else self.resized_size(original)
        resized_hw = (int(got[0]), int(got[1]))
        network = self.size if self.size is not None else self.padded(resized_hw)
        return Placement((int(original[0]), int(original[1])), resized_hw, self.offset(resized_hw), network)


# -- back to the original image -----------------------------------------------------------------
def boxes_to_original(boxes: np.ndarray, placement: Placement) -> np.ndarray:
    """x1, y1, x2, y2 in network-input pixels -> original pixels, clipped to the original image."""
    scale_y, scale_x = placement.scale
    offset_y, offset_x = placement.offset
    mapped = boxes.astype(np.float64).reshape(-1, 4).copy()
    mapped[:, [0, 2]] = (mapped[:, [0, 2]] - offset_x) * scale_x
    mapped[:, [1, 3]] = (mapped[:, [1, 3]] - offset_y) * scale_y
    limit = np.array([placement.original[1], placement.original[0]] * 2, dtype=np.float64)
    return np.clip(mapped, 0.0, limit).astype(np.float32)


def nearest_indices(target: int, source: int) -> np.ndarray:
    """For each of ``target`` pixels, the ``source`` pixel whose area holds its centre:
    ``floor((i + 0.5) * source / target)`` in integers, so no rounding error can move a row."""
    i = np.arange(target, dtype=np.int64)
    return np.minimum(((2 * i + 1) * source) // (2 * target), source - 1)


def _lookup_axis(
    original: int, resized: int, offset: int, network: int, output: int, visible: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """One axis of :func:`original_lookup`, in integers: original pixel ``i``'s centre lands in the
    network input at ``y = (i + 1/2) * resized / original + offset``, which is seen when it lies in the
    visible rows, and falls in output cell ``floor(y * output / network)`` (one rounding, so an output
    of another resolution, 3/4 say, is sampled where the centre lands, not at its network pixel's)."""
    i = np.arange(original, dtype=np.int64)
    twice = (2 * i + 1) * resized + 2 * offset * original  # 2 * original * y
    seen = (twice >= 2 * original * visible[0]) & (twice < 2 * original * visible[1])
    cells = (twice * output) // (2 * original * network)
    return np.clip(cells, 0, output - 1), seen


def original_lookup(placement: Placement, output: Size) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each original row and column, the row/column of a model output of size ``output`` (which
    covers the network input, possibly at another resolution) that holds its centre, and whether that
    pixel was seen at all (False where a centre crop cut it away)."""
    (y0, y1), (x0, x1) = placement.visible
    rows, row_seen = _lookup_axis(
        placement.original[0], placement.resized[0], placement.offset[0], placement.network[0], output[0], (y0, y1)
    )
    cols, col_seen = _lookup_axis(
        placement.original[1], placement.resized[1], placement.offset[1], placement.network[1], output[1], (x0, x1)
    )
    return rows, cols, row_seen, col_seen


def mask_to_original(labels: np.ndarray, placement: Placement, void: int) -> np.ndarray:
    """A class-id map over the network input (any resolution) -> one at the original size; pixels the
    network never saw (cut away by a centre crop) are ``void``."""
    rows, cols, row_seen, col_seen = original_lookup(placement, (int(labels.shape[0]), int(labels.shape[1])))
    mask = labels[rows[:, None], cols[None, :]].astype(np.uint8)
    if not (row_seen.all() and col_seen.all()):
        mask[~(row_seen[:, None] & col_seen[None, :])] = void
    return mask


def rule_of(config: ModelConfig, *, default: str) -> ResizeRule:
    """The preprocessing's resize rule, from a post-processing model's config parameters
    (``resize``, ``size`` as "height,width", ``shorter``, ``min_size``, ``max_size``, ``pad``,
    ``size_divisible``)."""
    mode = config.setting("resize", default)
    raw = config.setting("size", "")
    size: Size | None = None
    if raw:
        try:
            height, width = (int(v) for v in raw.split(","))
        except ValueError:
            raise ConfigError(f"model '{config.name}': parameter 'size' must be 'height,width', got '{raw}'") from None
        size = (height, width)
    try:
        return ResizeRule(
            mode,
            size,
            config.int_setting("shorter", 0) or None,
            config.float_setting("min_size", 0.0) or None,
            config.float_setting("max_size", 0.0) or None,
            config.setting("pad", TOP_LEFT),
            config.int_setting("size_divisible", 1),
        )
    except ConfigError as exc:
        raise ConfigError(f"model '{config.name}': {exc}") from None
