"""Keypoints: each detection's J keypoints back to the original image's pixels, and what the answer says
about them (names, skeleton), read from the post-processing's config (pure NumPy).

Config parameters (``triton-vision add-model`` writes them from the spec or the file):

- ``keypoint_names``: a JSON list of the J names, in the model's order;
- ``skeleton``: a JSON list of [a, b] index pairs joined when drawn (may be empty);
- ``keypoint_shape`` (yolo-pose): "J,D", D = 3 where each keypoint has x, y, visibility, 2 where x, y only.

x, y are mapped as box corners are (:func:`.geometry.boxes_to_original`: the resize rule undone, clipped
to the image); the confidence passes through (1 where a yolo-pose export has none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from . import geometry
from .errors import ConfigError


@dataclass(frozen=True)
class KeypointSpec:
    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    dims: int = 3  # yolo-pose: values per keypoint in the predictions' rows

    @property
    def count(self) -> int:
        return len(self.names)

    def names_table(self) -> np.ndarray:
        return np.array([n.encode("utf-8") for n in self.names], dtype=np.object_)

    def skeleton_table(self) -> np.ndarray:
        return np.array(self.skeleton, dtype=np.int32).reshape(-1, 2)


def keypoint_spec(names_json: str, skeleton_json: str, shape: str, where: str) -> KeypointSpec:
    """The keypoints' description from config parameter text; :class:`ConfigError` naming the parameter
    (after ``where``, where given)."""
    where = f"{where}: " if where else ""
    try:
        names = json.loads(names_json)
        skeleton = json.loads(skeleton_json or "[]")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}parameters 'keypoint_names' and 'skeleton' must be JSON: {exc}") from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}parameter 'keypoint_names' must be a JSON list of names, got {names_json!r}")
    pairs = []
    for pair in skeleton if isinstance(skeleton, list) else [None]:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(i, int) for i in pair)):
            raise ConfigError(f"{where}parameter 'skeleton' must be a JSON list of [a, b] pairs, got {pair!r}")
        if not all(0 <= i < len(names) for i in pair):
            raise ConfigError(f"{where}skeleton pair {pair} names a keypoint beyond the {len(names)} keypoints")
        pairs.append((pair[0], pair[1]))
    dims = 3
    if shape:
        try:
            count, dims = (int(v) for v in shape.split(","))
        except ValueError:
            raise ConfigError(f"{where}parameter 'keypoint_shape' must be 'J,D', got {shape!r}") from None
        if count != len(names) or dims not in (2, 3):
            raise ConfigError(
                f"{where}parameter 'keypoint_shape' {shape!r} must be {len(names)} keypoints (the names), "
                "each 2 or 3 values"
            )
    return KeypointSpec(tuple(names), tuple(pairs), dims)


def split_yolo_pose(rows: np.ndarray, spec: KeypointSpec) -> np.ndarray:
    """The last J x D values of each candidate row [n, ...] -> [n, J, 3] (x, y, confidence; 1 where D = 2)."""
    values = rows[:, rows.shape[1] - spec.count * spec.dims :].reshape(len(rows), spec.count, spec.dims)
    if spec.dims == 3:
        return values.astype(np.float32)
    return np.concatenate([values, np.ones((len(rows), spec.count, 1), values.dtype)], axis=2).astype(np.float32)


def to_original(keypoints: np.ndarray, placement: geometry.Placement) -> np.ndarray:
    """[n, J, 3] with x, y in network-input pixels -> original pixels (clipped), confidence unchanged."""
    out = keypoints.astype(np.float32).copy()
    if out.size:
        points = out[:, :, :2].reshape(-1, 2)
        mapped = geometry.boxes_to_original(np.concatenate([points, points], axis=1), placement)[:, :2]
        out[:, :, :2] = mapped.reshape(out.shape[0], out.shape[1], 2)
    return out
