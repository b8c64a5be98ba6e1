"""Draw detections on an image with OpenCV: one colour per class, labels on filled backgrounds; instance
masks filled in one colour per instance."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np

GOLDEN_RATIO = 0.618033988749895


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A distinct, saturated BGR colour per class id (hues spread by the golden ratio)."""
    hue = (int(class_id) * GOLDEN_RATIO) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def text_colour(background_bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light backgrounds, white on dark ones (ITU-R BT.601 luma)."""
    b, g, r = background_bgr
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def draw_detections(
    image_bgr: np.ndarray,
    boxes: Sequence[Sequence[float]],
    labels: Sequence[str],
    scores: Sequence[float],
    class_ids: Sequence[int],
) -> np.ndarray:
    """A copy of ``image_bgr`` (H x W x 3 uint8) with each box and a "label score" tag drawn on it."""
    import cv2

    canvas = np.ascontiguousarray(image_bgr.copy())
    height, width = canvas.shape[:2]
    scale = max(0.4, min(height, width) / 900.0)
    thickness = max(1, round(2 * scale))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for box, label, score, class_id in zip(boxes, labels, scores, class_ids, strict=True):
        colour = class_colour(class_id)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_8)
        text = f"{label} {score:.2f}"
        (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, max(1, thickness - 1))
        tag_h = text_h + baseline + 2 * thickness
        # Above the box when there is room, else just inside its top edge; never off the image.
        top = y1 - tag_h if y1 - tag_h >= 0 else min(max(y1, 0), max(height - tag_h, 0))
        left = min(max(x1, 0), max(width - text_w - 2 * thickness, 0))
        cv2.rectangle(canvas, (left, top), (left + text_w + 2 * thickness, top + tag_h), colour, cv2.FILLED)
        cv2.putText(
            canvas,
            text,
            (left + thickness, top + text_h + thickness),
            font,
            scale,
            text_colour(colour),
            max(1, thickness - 1),
            cv2.LINE_AA,
        )
    return canvas


def tags(detections) -> tuple[list[str], list[float], list[int]]:
    """Each box's label, score and colour key: the detector's, or for a pipeline's objects the second
    stage's top answer with the detector's label after it ("tabby (cat)", drawn with its score)."""
    if not detections.objects:
        return list(detections.labels), list(detections.scores), list(detections.class_ids)
    labels, scores, keys = [], [], []
    for label, score, class_id, answer in zip(
        detections.labels, detections.scores, detections.class_ids, detections.objects, strict=True
    ):
        if getattr(answer, "labels", None):  # a classifier's answer (an embedder's has none to draw)
            labels.append(f"{answer.labels[0]} ({label})")
            scores.append(answer.scores[0])
            keys.append(answer.class_ids[0])
        else:
            labels.append(label)
            scores.append(score)
            keys.append(0 if hasattr(answer, "labels") else class_id)
    return labels, scores, keys


def annotate_file(encoded: bytes, detections) -> np.ndarray:
    """Decode ``encoded`` (EXIF orientation applied, like the server's decoder) and draw ``detections``
    (a pipeline's objects labelled with their second-stage answers)."""
    import cv2

    image = cv2.imdecode(np.frombuffer(encoded, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("cannot decode the image to annotate it")
    labels, scores, keys = tags(detections)
    return draw_detections(image, detections.boxes, labels, scores, keys)


def draw_instances(image_bgr: np.ndarray, instance_map: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """A copy of ``image_bgr`` with each instance's pixels (value k of ``instance_map``) blended with a
    colour of its own (hues spread by the golden ratio from k), ``alpha`` of the colour."""
    canvas = image_bgr.astype(np.float32)
    count = int(instance_map.max()) if instance_map.size else 0
    palette = np.array([(0, 0, 0)] + [class_colour(k) for k in range(1, count + 1)], dtype=np.float32)
    covered = (instance_map > 0) & (instance_map <= count)
    canvas[covered] = (1 - alpha) * canvas[covered] + alpha * palette[instance_map[covered]]
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def annotate_instances_file(encoded: bytes, instances) -> np.ndarray:
    """Decode ``encoded`` and draw each instance's mask, then its box and tag."""
    import cv2

    image = cv2.imdecode(np.frombuffer(encoded, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("cannot decode the image to annotate it")
    if image.shape[:2] != instances.instance_map.shape:
        raise ValueError(
            f"the instance map is {list(instances.instance_map.shape)}, the decoded image {list(image.shape[:2])}"
        )
    d = instances.detections
    return draw_detections(draw_instances(image, instances.instance_map), d.boxes, d.labels, d.scores, d.class_ids)


def draw_keypoints(image_bgr: np.ndarray, answer, shown: float = 0.5) -> np.ndarray:
    """``image_bgr`` with each detection's skeleton (lines between keypoints both at or above ``shown``) and its
    keypoints at or above ``shown`` drawn in its class colour, over its box and tag."""
    import cv2

    d = answer.detections
    canvas = draw_detections(image_bgr, d.boxes, d.labels, d.scores, d.class_ids)
    radius = max(2, round(min(canvas.shape[:2]) / 200))
    for class_id, points in zip(d.class_ids, answer.points, strict=True):
        colour = class_colour(class_id)
        for a, b in answer.skeleton:
            if points[a][2] >= shown and points[b][2] >= shown:
                start = (int(round(points[a][0])), int(round(points[a][1])))
                end = (int(round(points[b][0])), int(round(points[b][1])))
                cv2.line(canvas, start, end, colour, max(1, radius // 2 + 1), cv2.LINE_AA)
        for x, y, confidence in points:
            if confidence >= shown:
                cv2.circle(canvas, (int(round(x)), int(round(y))), radius, text_colour(colour), -1, cv2.LINE_AA)
                cv2.circle(canvas, (int(round(x)), int(round(y))), radius, colour, 1, cv2.LINE_AA)
    return canvas


def annotate_keypoints_file(encoded: bytes, answer) -> np.ndarray:
    """Decode ``encoded`` and draw each detection's box, skeleton and keypoints."""
    import cv2

    image = cv2.imdecode(np.frombuffer(encoded, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("cannot decode the image to annotate it")
    return draw_keypoints(image, answer)
