"""The keypoints of a spec (``[postprocess]`` ``keypoint_names``, ``skeleton``, ``keypoint_shape``) and the
defaults where neither the spec nor the file names them: COCO's 17 person keypoints and their skeleton (the
order of COCO's annotations, torchvision's Keypoint R-CNN and Ultralytics' pose models)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COCO_KEYPOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# COCO's person skeleton (its annotations' 1-based pairs, here 0-based).
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip


@dataclass(frozen=True)
class KeypointKeys:
    """What the spec says about keypoints (None: not said)."""

    names: tuple[str, ...] | None = None
    skeleton: tuple[tuple[int, int], ...] | None = None
    shape: tuple[int, int] | None = None  # (J, values per keypoint: 2 or 3), yolo-pose's rows


def parse_keypoint_keys(table: Any) -> KeypointKeys:
    """The keys from a spec's ``[postprocess]`` table (an ``ensemble_spec._Table``)."""
    names = table.get("keypoint_names", list, "a list of keypoint names")
    if names is not None and (not names or not all(isinstance(n, str) and n for n in names)):
        raise table.fail("keypoint_names", "a list of keypoint names")
    skeleton = table.get("skeleton", list, "a list of [a, b] keypoint index pairs")
    pairs = None
    if skeleton is not None:
        ok = all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(i, int) and not isinstance(i, bool) for i in p)
            for p in skeleton
        )
        if not ok:
            raise table.fail("skeleton", "a list of [a, b] keypoint index pairs")
        pairs = tuple((int(a), int(b)) for a, b in skeleton)
    shape = table.numbers("keypoint_shape", 2, integers=True)
    if shape is not None and (shape[0] < 1 or shape[1] not in (2, 3)):
        raise table.fail("keypoint_shape", "[keypoints, 2 or 3] (values per keypoint: x, y[, visibility])")
    if names is not None and shape is not None and len(names) != shape[0]:
        raise table.fail("keypoint_names", f"{shape[0]} names (keypoint_shape = {list(shape)})")
    return KeypointKeys(tuple(names) if names is not None else None, pairs, shape)
