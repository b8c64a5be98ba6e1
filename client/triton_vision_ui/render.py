"""Each task's answer as the page shows it: JSON, with the pictures drawn here.

Boxes are drawn by the client's own annotator (the picture ``detect --out`` writes); a mask
becomes an RGBA PNG in the VOC colours with the background left clear, which the page lays over
the photo at the opacity its control sets.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

import triton_vision_contract as contract
from triton_vision_client.annotate import (
    annotate_file,
    annotate_instances_file,
    annotate_keypoints_file,
    class_colour,
    tags,
)
from triton_vision_client.answers import SHOWN_CONFIDENCE, Embedding, Instances, Keypoints
from triton_vision_client.client import Classification, Detections
from triton_vision_client.segmentation import Segmentation

JPEG_QUALITY = 90
BACKGROUND = 0  # VOC class id left transparent in the mask picture
PALETTE = np.array(contract.voc_palette(), dtype=np.uint8)  # RGB per class id


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def classification_view(answer: Classification) -> dict[str, Any]:
    return {
        "labels": [
            {"label": label, "class_id": class_id, "score": score}
            for class_id, score, label in zip(answer.class_ids, answer.scores, answer.labels, strict=True)
        ]
    }


EMBEDDING_VALUES = 8  # values of an embedding the page shows


def embedding_view(answer: Embedding) -> dict[str, Any]:
    """The embedding's size, norm and first values."""
    values = answer.vector[:EMBEDDING_VALUES]
    return {"dim": int(answer.vector.shape[0]), "norm": answer.norm, "values": [float(v) for v in values]}


def _encode(extension: str, image: np.ndarray, params: list[int] | None = None) -> bytes:
    import cv2

    ok, encoded = cv2.imencode(extension, image, params or [])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} picture as {extension}")
    return encoded.tobytes()


def detection_view(encoded: bytes, answer: Detections) -> dict[str, Any]:
    """The detections (a pipeline's: each with its object's second-stage answer), and the photo with
    them drawn as a JPEG data URL."""
    return drawn_detections_view(annotate_file(encoded, answer), answer)


def instances_view(encoded: bytes, answer: Instances) -> dict[str, Any]:
    """detection's view, the photo drawn with each instance's mask in a colour of its own; each row has its
    pixel count."""
    view = drawn_detections_view(annotate_instances_file(encoded, answer), answer.detections)
    for row, pixels in zip(view["detections"], answer.pixels(), strict=True):
        row["pixels"] = pixels
    return view


def keypoints_view(encoded: bytes, answer: Keypoints) -> dict[str, Any]:
    """detection's view, the photo drawn with each detection's skeleton; each row has its keypoints seen."""
    view = drawn_detections_view(annotate_keypoints_file(encoded, answer), answer.detections)
    for row, points in zip(view["detections"], answer.points, strict=True):
        row["keypoints_seen"] = int((points[:, 2] >= SHOWN_CONFIDENCE).sum())
        row["keypoints"] = len(answer.names)
    return view


def drawn_detections_view(drawn: np.ndarray, answer: Detections) -> dict[str, Any]:
    """The detections' rows and ``drawn`` (the photo with them) as a JPEG data URL."""
    import cv2

    height, width = drawn.shape[:2]
    detections = []
    _, _, keys = tags(answer)  # a pipeline's boxes take their second-stage answer's colour
    for index, (box, score, class_id, label) in enumerate(
        zip(answer.boxes, answer.scores, answer.class_ids, answer.labels, strict=True)
    ):
        blue, green, red = class_colour(keys[index])
        row: dict[str, Any] = {
            "label": label,
            "class_id": class_id,
            "score": score,
            "box": [round(v, 1) for v in box],
            "colour": hex_colour((red, green, blue)),
        }
        second = answer.objects[index] if answer.objects else None
        if isinstance(second, Classification) and second.labels:
            row["answer"] = {"label": second.labels[0], "class_id": second.class_ids[0], "score": second.scores[0]}
            row["answers"] = classification_view(second)["labels"]
        detections.append(row)
    return {
        "width": width,
        "height": height,
        "detections": detections,
        "drawn": data_url("image/jpeg", _encode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])),
    }


def mask_rgba(mask: np.ndarray) -> np.ndarray:
    """H x W x 4 uint8 in OpenCV's BGRA order: each class in its VOC colour, the background clear."""
    rgb = PALETTE[mask]
    alpha = np.where(mask == BACKGROUND, 0, 255).astype(np.uint8)
    return np.dstack([rgb[..., 2], rgb[..., 1], rgb[..., 0], alpha])


def segmentation_view(answer: Segmentation) -> dict[str, Any]:
    """The mask as an RGBA PNG data URL and a legend of the classes present, largest first."""
    height, width = answer.mask.shape
    return {
        "width": width,
        "height": height,
        "mask": data_url("image/png", _encode(".png", mask_rgba(answer.mask))),
        "legend": [
            {
                "class_id": class_id,
                "label": label,
                "fraction": fraction,
                "colour": hex_colour(tuple(int(c) for c in PALETTE[class_id])),  # type: ignore[arg-type]
                "drawn": class_id != BACKGROUND,
            }
            for class_id, label, fraction in answer.present()
        ],
    }
