"""Instance masks -> one map of instances per image at its original size (pure NumPy).

Every instance format gives, per detection, a *field* over the network input at some resolution:
yolo-seg the logits ``coefficients . prototypes`` (an instance where the logit is above 0, i.e. its
sigmoid above 0.5, cropped to the detection's box), torchvision-maskrcnn the pasted mask's
probabilities (above 0.5). The field is sampled bilinearly (half-pixel centres, edges clamped:
PyTorch's ``interpolate(..., align_corners=False)`` and OpenCV's ``INTER_LINEAR``) at the centre of
each original pixel, mapped through the resize rule's :class:`~.geometry.Placement`, which undoes
the letterbox, stretch or crop in the same step as the upsampling.

The map is UINT16: value ``k`` (1-based, in the detections' order, best first) where detection ``k``
covers the pixel and no better one does, 0 elsewhere. Detections are painted worst first, so a
better one overwrites.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import geometry
from .errors import InvalidInputError

MAX_INSTANCES = 65534  # 65535 pads a batch's rows (contract.INSTANCE_PAD)


@dataclass(frozen=True)
class MaskSource:
    """Where one image's candidate detections' masks come from (one of the two forms)."""

    threshold: float  # a pixel is the instance's where the field is above it
    crop: bool  # only inside the detection's box (yolo-seg)
    coefficients: np.ndarray | None = None  # [n, M] per candidate (yolo-seg), with ...
    prototypes: np.ndarray | None = None  # ... [M, h, w] over the network input
    masks: np.ndarray | None = None  # [n, h, w] per candidate (torchvision-maskrcnn)

    def fields(self, keep: np.ndarray) -> np.ndarray:
        """[len(keep), h, w] float32: the kept candidates' fields over the network input."""
        if self.masks is not None:
            return np.asarray(self.masks[keep], dtype=np.float32)
        assert self.coefficients is not None and self.prototypes is not None
        m, h, w = self.prototypes.shape
        flat = self.prototypes.reshape(m, h * w).astype(np.float32)
        return (self.coefficients[keep].astype(np.float32) @ flat).reshape(len(keep), h, w)


def field_positions(start: int, stop: int, original: int, resized: int, offset: int, network: int, field: int):
    """For original pixels ``start..stop-1`` along one axis, where their centres fall in a field of
    ``field`` pixels covering the ``network`` input, in the field's pixel-index units (centre = i)."""
    i = np.arange(start, stop, dtype=np.float64)
    in_network = (i + 0.5) * resized / original + offset
    return in_network * field / network - 0.5


def bilinear_weights(positions: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper neighbour indices and the upper's weight for each position (edges clamped)."""
    clamped = np.clip(positions, 0.0, size - 1)
    low = np.floor(clamped).astype(np.int64)
    high = np.minimum(low + 1, size - 1)
    return low, high, (clamped - low).astype(np.float32)


def sample(field: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``field`` [h, w] sampled bilinearly at every (row, col) position pair: [len(rows), len(cols)]."""
    r0, r1, wr = bilinear_weights(rows, field.shape[0])
    c0, c1, wc = bilinear_weights(cols, field.shape[1])
    along_rows = field[r0] * (1 - wr)[:, None] + field[r1] * wr[:, None]
    return along_rows[:, c0] * (1 - wc)[None, :] + along_rows[:, c1] * wc[None, :]


def pixel_span(low: float, high: float, limit: int) -> tuple[int, int]:
    """The pixels ``start..stop-1`` whose centres ``i + 0.5`` lie in [low, high), within 0..limit."""
    start = min(max(math.ceil(low - 0.5), 0), limit)
    return start, min(max(math.ceil(high - 0.5), start), limit)


def field_span(field_low: int, field_high: int, field: int, network: int, resized: int, offset: int, original: int):
    """Original pixels whose centres can sample the field rows ``field_low..field_high`` (inclusive), a
    field pixel of margin either side (bilinear sampling reaches one neighbour)."""
    low = (max(field_low - 1, 0)) * network / field
    high = (min(field_high + 2, field)) * network / field
    return pixel_span((low - offset) * original / resized, (high - offset) * original / resized, original)


def instance_map(
    boxes: np.ndarray, fields: np.ndarray, source: MaskSource, placement: geometry.Placement
) -> np.ndarray:
    """UINT16 [H0, W0] of ``placement.original``: boxes [n, 4] in original pixels (best first),
    fields [n, h, w] over the network input."""
    height, width = placement.original
    result = np.zeros((height, width), dtype=np.uint16)
    if len(boxes) > MAX_INSTANCES:
        raise InvalidInputError(f"{len(boxes)} instances do not fit a UINT16 map (at most {MAX_INSTANCES})")
    net_h, net_w = placement.network
    (res_h, res_w), (off_y, off_x) = placement.resized, placement.offset
    for k in range(len(boxes) - 1, -1, -1):
        field = fields[k]
        above = field > source.threshold
        hit_rows, hit_cols = np.flatnonzero(above.any(axis=1)), np.flatnonzero(above.any(axis=0))
        if hit_rows.size == 0:
            continue
        fh, fw = field.shape
        y0, y1 = field_span(int(hit_rows[0]), int(hit_rows[-1]), fh, net_h, res_h, off_y, height)
        x0, x1 = field_span(int(hit_cols[0]), int(hit_cols[-1]), fw, net_w, res_w, off_x, width)
        if source.crop:
            bx1, by1, bx2, by2 = (float(v) for v in boxes[k])
            y0, y1 = max(y0, pixel_span(by1, by2, height)[0]), min(y1, pixel_span(by1, by2, height)[1])
            x0, x1 = max(x0, pixel_span(bx1, bx2, width)[0]), min(x1, pixel_span(bx1, bx2, width)[1])
        if y1 <= y0 or x1 <= x0:
            continue
        rows = field_positions(y0, y1, height, res_h, off_y, net_h, fh)
        cols = field_positions(x0, x1, width, res_w, off_x, net_w, fw)
        inside = sample(field, rows, cols) > source.threshold
        result[y0:y1, x0:x1][inside] = k + 1
    return result


def pad_maps(maps: list[np.ndarray], pad: int) -> np.ndarray:
    """[B, H, W]: each map at the top-left, padded bottom/right with ``pad`` to the largest H and W."""
    height = max((m.shape[0] for m in maps), default=0)
    width = max((m.shape[1] for m in maps), default=0)
    out = np.full((len(maps), height, width), pad, dtype=np.uint16)
    for index, m in enumerate(maps):
        out[index, : m.shape[0], : m.shape[1]] = m
    return out
