"""Each task's answer for one image, split out of a batched response (pure NumPy).

Every ensemble of a task answers with that task's outputs (``contract.TASK_OUTPUTS``), whatever
its model, class count or labels, so one splitter per task serves every ensemble.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

import triton_vision_contract as contract


@dataclass(frozen=True)
class Classification:
    """Top-k answer for one image, best first."""

    class_ids: tuple[int, ...]
    scores: tuple[float, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Detections:
    """Detections for one image, best first; boxes are x1, y1, x2, y2 in the image's pixels."""

    boxes: tuple[tuple[float, float, float, float], ...]
    scores: tuple[float, ...]
    class_ids: tuple[int, ...]  # the model's class ids (the built-in detector: COCO's 91-id numbering)
    labels: tuple[str, ...]
    # A pipeline's answer: each object's second-stage answer (a classifier's top-k, an embedder's
    # vector), in the order of the boxes (else empty).
    objects: tuple[Classification | Embedding, ...] = ()

    def __len__(self) -> int:
        return len(self.scores)


def decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def split_detections(out: Mapping[str, np.ndarray]) -> list[Detections]:
    """A detection response (B images, rows padded to the largest COUNT) as B :class:`Detections`."""
    results = []
    for row, count in enumerate(out[contract.COUNT].reshape(-1)):
        n = int(count)
        results.append(
            Detections(
                boxes=tuple(
                    (float(x1), float(y1), float(x2), float(y2))
                    for x1, y1, x2, y2 in out[contract.BOXES][row].reshape(-1, 4)[:n]
                ),
                scores=tuple(float(s) for s in out[contract.SCORES][row][:n]),
                class_ids=tuple(int(i) for i in out[contract.CLASS_IDS][row][:n]),
                labels=tuple(decode(label) for label in out[contract.LABELS][row][:n]),
            )
        )
    return results


def split_pipeline(out: Mapping[str, np.ndarray]) -> list[Detections]:
    """A pipeline's response: the detections, each with its object's second-stage answer."""
    results = []
    for row, found in enumerate(split_detections(out)):
        n = len(found)
        objects: list[Classification | Embedding]
        if contract.OBJECT_EMBEDDINGS in out:
            objects = list(split_embeddings({contract.EMBEDDING_OUTPUT: out[contract.OBJECT_EMBEDDINGS][row][:n]}))
        else:
            objects = list(
                split_classifications(
                    {
                        contract.CLASS_IDS: out[contract.OBJECT_CLASS_IDS][row][:n],
                        contract.SCORES: out[contract.OBJECT_SCORES][row][:n],
                        contract.LABELS: out[contract.OBJECT_LABELS][row][:n],
                    }
                )
            )
        results.append(replace(found, objects=tuple(objects)))
    return results


def split_classifications(out: Mapping[str, np.ndarray]) -> list[Classification]:
    return [
        Classification(
            class_ids=tuple(int(i) for i in ids),
            scores=tuple(float(s) for s in scores),
            labels=tuple(decode(label) for label in labels),
        )
        for ids, scores, labels in zip(out[contract.CLASS_IDS], out[contract.SCORES], out[contract.LABELS], strict=True)
    ]


@dataclass(frozen=True, eq=False)
class Segmentation:
    """One image's answer: ``mask`` UINT8 [H, W] of class ids at the size of the image sent."""

    mask: np.ndarray
    fractions: tuple[float, ...]  # per class id: fraction of the image's pixels
    labels: tuple[str, ...]  # per class id: VOC name
    overlay_png: bytes | None  # the image blended 50/50 with the coloured mask, if asked

    def present(self) -> list[tuple[int, str, float]]:
        """(class id, name, pixel fraction) of the classes in the mask, largest first."""
        found = [(i, self.labels[i], f) for i, f in enumerate(self.fractions) if f > 0.0]
        return sorted(found, key=lambda item: (-item[2], item[0]))


def split_segmentations(outputs: Mapping[str, np.ndarray]) -> list[Segmentation]:
    """The ensemble's batched outputs -> one :class:`Segmentation` per image, masks cropped."""
    results = []
    for index, (height, width) in enumerate(outputs[contract.MASK_SIZE]):
        overlay = outputs[contract.OVERLAY][index][0] if contract.OVERLAY in outputs else b""
        results.append(
            Segmentation(
                mask=np.ascontiguousarray(outputs[contract.MASK][index, :height, :width]),
                fractions=tuple(float(f) for f in outputs[contract.CLASS_FRACTIONS][index]),
                labels=tuple(decode(label) for label in outputs[contract.LABELS][index]),
                overlay_png=bytes(overlay) or None,
            )
        )
    return results


@dataclass(frozen=True, eq=False)
class Embedding:
    """One image's embedding: ``vector`` FP32 [D] (unit length unless its ensemble's spec says normalize = false)."""

    vector: np.ndarray

    @property
    def norm(self) -> float:
        return float(np.linalg.norm(self.vector.astype(np.float64)))


def split_embeddings(outputs: Mapping[str, np.ndarray]) -> list[Embedding]:
    """The ensemble's EMBEDDING [B, D] -> one :class:`Embedding` per image."""
    return [Embedding(np.ascontiguousarray(row, dtype=np.float32)) for row in outputs[contract.EMBEDDING_OUTPUT]]


@dataclass(frozen=True, eq=False)
class Instances:
    """One image's instances: its detections (best first) and ``instance_map`` UINT16 [H, W] at the size of
    the image sent, ``k`` where detection ``k - 1`` (0-based, in the detections' order) covers the pixel and
    no better one does, 0 elsewhere."""

    detections: Detections
    instance_map: np.ndarray

    def __len__(self) -> int:
        return len(self.detections)

    def mask(self, index: int) -> np.ndarray:
        """Detection ``index``'s (0-based) pixels, where no better detection covers them."""
        return self.instance_map == index + 1

    def pixels(self) -> list[int]:
        """Each detection's number of pixels in the map."""
        counts = np.bincount(self.instance_map.reshape(-1), minlength=len(self) + 1)
        return [int(c) for c in counts[1 : len(self) + 1]]

    def polygons(self, index: int) -> list[list[tuple[int, int]]]:
        """Detection ``index``'s outlines (OpenCV's ``findContours``, outer boundaries, simplified): each a
        list of (x, y) pixel corners, largest first."""
        import cv2

        contours, _ = cv2.findContours(self.mask(index).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        ordered = sorted(contours, key=lambda c: -cv2.contourArea(c))
        return [[(int(x), int(y)) for x, y in contour.reshape(-1, 2)] for contour in ordered]


def own_size(padded: np.ndarray, pad: int) -> tuple[int, int]:
    """The image's own (height, width) in a map padded bottom/right with ``pad`` (its own pixels never are)."""
    if padded.size == 0:
        return 0, 0
    return int(np.count_nonzero(padded[:, 0] != pad)), int(np.count_nonzero(padded[0, :] != pad))


def split_instances(out: Mapping[str, np.ndarray]) -> list[Instances]:
    """An instance-segmentation response (B images) as B :class:`Instances`, maps cropped to each image."""
    results = []
    for row, detections in enumerate(split_detections(out)):
        padded = out[contract.INSTANCE_MAP][row]
        height, width = own_size(padded, contract.INSTANCE_PAD)
        results.append(Instances(detections, np.ascontiguousarray(padded[:height, :width])))
    return results


@dataclass(frozen=True, eq=False)
class Keypoints:
    """One image's detections (best first) and each one's keypoints: ``points`` FP32 [K, J, 3] (x, y in the
    image's pixels, confidence), the keypoints' ``names`` and the ``skeleton``'s index pairs."""

    detections: Detections
    points: np.ndarray
    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.detections)


SHOWN_CONFIDENCE = 0.5  # a keypoint is drawn, and counted as seen, at or above it


def split_keypoints(out: Mapping[str, np.ndarray]) -> list[Keypoints]:
    """A keypoints response (B images) as B :class:`Keypoints`, each cut to its COUNT."""
    results = []
    for row, detections in enumerate(split_detections(out)):
        results.append(
            Keypoints(
                detections,
                np.ascontiguousarray(out[contract.KEYPOINTS][row][: len(detections)]),
                tuple(decode(name) for name in out[contract.KEYPOINT_NAMES][row]),
                tuple((int(a), int(b)) for a, b in out[contract.SKELETON][row].reshape(-1, 2)),
            )
        )
    return results


# Each task's splitter: batched outputs -> one answer per image.
SPLITTERS: dict[str, Callable[[Mapping[str, np.ndarray]], list]] = {
    contract.CLASSIFICATION: split_classifications,
    contract.DETECTION: split_detections,
    contract.SEGMENTATION: split_segmentations,
    contract.PIPELINE: split_pipeline,
    contract.EMBEDDING: split_embeddings,
    contract.INSTANCE_SEGMENTATION: split_instances,
    contract.KEYPOINT_TASK: split_keypoints,
}
