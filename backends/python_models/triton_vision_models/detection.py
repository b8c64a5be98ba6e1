"""Detection post-processing: decode a detector's outputs, threshold, top-N, boxes back to the
original image's pixels, labels (pure NumPy; OpenCV's NMS for the ``yolo`` format).

Config parameters (``triton-vision add-model`` writes them from the ensemble spec):

- ``labels``: the label file (relative to the repository); ``label_offset``: the label of model class
  id ``c`` is line ``c + label_offset``, and CLASS_IDS answers that line number;
- ``format``: what the detector outputs, per image of the batch:
  - ``torchvision``: RAW_BOXES [K, 4] x1, y1, x2, y2 in network-input pixels, RAW_SCORES [K],
    RAW_LABELS [K], optionally RAW_COUNT [1] (only the first COUNT rows are detections);
  - ``tf-od`` (the TensorFlow Object Detection API, TFLite SSDs): RAW_BOXES [K, 4] ymin, xmin,
    ymax, xmax normalised to the network input, RAW_SCORES [K], RAW_LABELS [K] (float class ids),
    RAW_COUNT [1] (float);
  - ``yolo`` (Ultralytics v8/v11 exports): RAW_PREDICTIONS [4 + C, N] centre x, y, width, height in
    network-input pixels then C class scores; the score threshold, class-wise NMS (request parameter
    ``iou_threshold``) and ``max_detections`` are applied here;
  - ``yolov5`` (Ultralytics YOLOv5, YOLOv7 exports): RAW_PREDICTIONS [N, 5 + C] centre x, y, width,
    height in network-input pixels, objectness, C class probabilities; score = objectness x class
    probability; then as ``yolo``;
  - ``yolox`` (YOLOX exports, ``decode_in_inference`` off): RAW_PREDICTIONS [N, 5 + C], one row per
    cell of the stride 8, 16 and 32 grids of the network input (row-major, finest first): raw x, y,
    w, h, objectness, C class probabilities; decoded here as YOLOX's ``demo_postprocess`` does
    (centre ``(x + grid_x) * stride``, size ``exp(w) * stride``), score = objectness x class
    probability; then as ``yolo``;
  - instance segmentation (:mod:`.instances`; the answer gains INSTANCE_MAP): ``yolo-seg`` (Ultralytics'
    segment exports), ``yolo``'s RAW_PREDICTIONS with M mask coefficients after the class scores
    [4 + C + M, N] and RAW_PROTOTYPES [M, h, w]; ``torchvision-maskrcnn``, ``torchvision``'s tensors and
    RAW_MASKS [K, 1, H, W] probabilities over the network input;
  - keypoints (:mod:`.keypoints`; the answer gains KEYPOINTS, KEYPOINT_NAMES, SKELETON): ``yolo-pose``
    (Ultralytics' pose exports), ``yolo``'s rows followed by J x (x, y[, visibility]);
    ``torchvision-keypointrcnn``, ``torchvision``'s tensors and RAW_KEYPOINTS [K, J, 3],
    RAW_KEYPOINT_SCORES [K, J];
- ``resize``/``size``/``pad``: the preprocessing's rule (:mod:`.geometry`), to undo it: together with
  ORIGINAL_SIZE and RESIZED_SIZE (from the preprocessing) every box is mapped back to the decoded
  original image and clipped to it;
- ``default_score_threshold``, ``default_max_detections``, ``default_iou_threshold``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import geometry, instances, keypoints
from . import tensors as t
from .errors import ConfigError, InferenceError, InvalidInputError, InvalidParameterError
from .labels import labels_of
from .model_config import ModelConfig, RequestData
from .parameters import float_parameter, int_parameter, refuse_unknown

TORCHVISION = "torchvision"
TF_OD = "tf-od"
YOLO = "yolo"
YOLOV5 = "yolov5"
YOLOX = "yolox"
YOLO_SEG = "yolo-seg"
MASKRCNN = "torchvision-maskrcnn"
YOLO_POSE = "yolo-pose"
KEYPOINTRCNN = "torchvision-keypointrcnn"
FORMATS = (TORCHVISION, TF_OD, YOLO, YOLOV5, YOLOX, YOLO_SEG, MASKRCNN, YOLO_POSE, KEYPOINTRCNN)
INSTANCE_FORMATS = (YOLO_SEG, MASKRCNN)  # their answer gains INSTANCE_MAP
KEYPOINT_FORMATS = (YOLO_POSE, KEYPOINTRCNN)  # their answer gains KEYPOINTS, KEYPOINT_NAMES, SKELETON
# Candidates decoded, thresholded and suppressed here (request parameter iou_threshold).
NMS_FORMATS = (YOLO, YOLOV5, YOLOX, YOLO_SEG, YOLO_POSE)
TORCHVISION_FORMATS = (TORCHVISION, MASKRCNN, KEYPOINTRCNN)  # torchvision's boxes, scores, labels (count)
SAME_FOR_EVERY_IMAGE = (t.COUNT, t.KEYPOINT_NAMES, t.SKELETON)  # not padded to the request's largest COUNT
MASK_THRESHOLD = 0.5  # a pixel is an instance's where its mask's probability is above it
YOLOX_STRIDES = (8, 16, 32)
IOU_THRESHOLD = "iou_threshold"  # request parameter of the yolo format
DEFAULT_IOU_THRESHOLD = 0.45
PARAMETERS = (t.SCORE_THRESHOLD, t.MAX_DETECTIONS)


def request_parameters(format: str) -> tuple[str, ...]:
    """The request parameters a detection post-processing of ``format`` takes."""
    return PARAMETERS + ((IOU_THRESHOLD,) if format in NMS_FORMATS else ())


def parse_score_threshold(parameters: Mapping[str, Any], default: float = t.DEFAULT_SCORE_THRESHOLD) -> float:
    """The request's ``score_threshold`` parameter, checked: a number in [0, 1]."""
    return float_parameter(parameters, t.SCORE_THRESHOLD, default, minimum=0.0, maximum=1.0)


def parse_max_detections(parameters: Mapping[str, Any], default: int = t.DEFAULT_MAX_DETECTIONS) -> int:
    """The request's ``max_detections`` parameter, checked: an integer >= 1."""
    return int_parameter(parameters, t.MAX_DETECTIONS, default, minimum=1)


def parse_iou_threshold(parameters: Mapping[str, Any], default: float = DEFAULT_IOU_THRESHOLD) -> float:
    return float_parameter(parameters, IOU_THRESHOLD, default, minimum=0.0, maximum=1.0)


def select_detections(scores: np.ndarray, threshold: float, max_detections: int) -> np.ndarray:
    """Indices of the scores >= ``threshold``, best first, at most ``max_detections``.

    Equal scores keep the detector's order (a stable sort), so ties are reproducible.
    """
    candidates = np.flatnonzero(scores >= threshold)
    order = np.argsort(-scores[candidates], kind="stable")
    return candidates[order][:max_detections]


def map_boxes_to_original(boxes: np.ndarray, resized_hw: Sequence[int], original_hw: Sequence[int]) -> np.ndarray:
    """x1, y1, x2, y2 from resized-input pixels to original pixels, clipped (keep-aspect and stretch)."""
    if min(*resized_hw, *original_hw) <= 0:
        raise InferenceError(
            f"image sizes must be positive, got resized {list(resized_hw)} original {list(original_hw)}"
        )
    placement = geometry.Placement(
        (int(original_hw[0]), int(original_hw[1])),
        (int(resized_hw[0]), int(resized_hw[1])),
        (0, 0),
        (int(resized_hw[0]), int(resized_hw[1])),
    )
    return geometry.boxes_to_original(boxes, placement)


def label_table(labels: Sequence[str]) -> np.ndarray:
    """Labels as the BYTES array a response carries, built once."""
    return np.array([label.encode("utf-8") for label in labels], dtype=np.object_)


def label_names(class_ids: np.ndarray, labels: Sequence[str] | np.ndarray) -> np.ndarray:
    """The label of each class id (a line number of the label file)."""
    if class_ids.size and (class_ids.min() < 0 or class_ids.max() >= len(labels)):
        raise InferenceError(f"class ids must be in 0..{len(labels) - 1}, got {class_ids.tolist()}")
    table = labels if isinstance(labels, np.ndarray) else label_table(labels)
    return table[class_ids.astype(np.int64)]


PADDING = {np.dtype(np.object_): b""}


def pad_rows(values: np.ndarray, rows: int) -> np.ndarray:
    """``values`` with zero rows (b"" for BYTES) appended up to ``rows`` along the first axis."""
    if values.shape[0] >= rows:
        return values
    padding = np.full((rows - values.shape[0], *values.shape[1:]), PADDING.get(values.dtype, 0), dtype=values.dtype)
    return np.concatenate([values, padding])


# -- decoding each format: per image, boxes x1 y1 x2 y2 in network-input pixels, scores, class ids ------
@dataclass(frozen=True)
class Candidates:
    boxes: np.ndarray  # [n, 4] float, network-input pixels
    scores: np.ndarray  # [n]
    class_ids: np.ndarray  # [n] int64, the model's own ids
    ranked: bool = False  # already thresholded, suppressed and cut (yolo)
    masks: instances.MaskSource | None = None  # instance formats: each candidate's mask
    keypoints: np.ndarray | None = None  # keypoint formats: [n, J, 3] x, y in network-input pixels, confidence


def _count(counts: np.ndarray | None, index: int, rows: int) -> int:
    if counts is None:
        return rows
    n = int(np.rint(float(np.asarray(counts[index]).reshape(-1)[0])))
    if not 0 <= n <= rows:
        raise InvalidInputError(f"detection_postprocess: inconsistent inputs (a count of {n} for {rows} rows)")
    return n


def decode_torchvision(inputs: Mapping[str, np.ndarray], index: int) -> Candidates:
    boxes, scores, ids = inputs[t.RAW_BOXES][index], inputs[t.RAW_SCORES][index], inputs[t.RAW_LABELS][index]
    n = _count(inputs.get(t.RAW_COUNT), index, boxes.shape[0])
    return Candidates(boxes[:n].reshape(-1, 4), scores[:n], np.rint(ids[:n]).astype(np.int64))


def decode_tf_od(inputs: Mapping[str, np.ndarray], index: int, network: geometry.Size) -> Candidates:
    """Normalised ymin, xmin, ymax, xmax -> x1, y1, x2, y2 in network-input pixels."""
    boxes, scores, ids = inputs[t.RAW_BOXES][index], inputs[t.RAW_SCORES][index], inputs[t.RAW_LABELS][index]
    n = _count(inputs.get(t.RAW_COUNT), index, boxes.shape[0])
    normalised = boxes[:n].reshape(-1, 4).astype(np.float64)
    height, width = network
    xyxy = np.stack(
        [normalised[:, 1] * width, normalised[:, 0] * height, normalised[:, 3] * width, normalised[:, 2] * height],
        axis=1,
    )
    return Candidates(xyxy, scores[:n], np.rint(ids[:n]).astype(np.int64))


def decode_yolo(
    predictions: np.ndarray,
    threshold: float,
    iou_threshold: float,
    max_detections: int,
    prototypes: np.ndarray | None = None,
    pose: keypoints.KeypointSpec | None = None,
) -> Candidates:
    """[4 + C, N] (cx, cy, w, h, C scores) -> the detections above ``threshold`` after class-wise NMS;
    with ``prototypes`` [M, h, w] (yolo-seg) the rows end with M mask coefficients, [4 + C + M, N]; with
    ``pose`` (yolo-pose) with J x D keypoint values."""
    extra = prototypes.shape[0] if prototypes is not None else pose.count * pose.dims if pose is not None else 0
    if predictions.ndim != 2 or predictions.shape[0] < 5 + extra:
        wanted = f"[4 + classes + {extra}, candidates]" if extra else "[4 + classes, candidates]"
        raise InvalidInputError(f"yolo predictions must be {wanted}, got {list(predictions.shape)}")
    rows = predictions.T.astype(np.float32)
    classes_end = rows.shape[1] - extra
    found, chosen = suppress(rows[:, :4], rows[:, 4:classes_end], threshold, iou_threshold, max_detections)
    masks = None if prototypes is None else instances.MaskSource(0.0, True, rows[chosen, classes_end:], prototypes)
    if pose is None:
        points = None
    elif chosen.size:
        points = keypoints.split_yolo_pose(rows[chosen], pose)
    else:
        points = np.zeros((0, pose.count, 3), np.float32)
    return replace(found, masks=masks, keypoints=points)


def decode_yolov5(predictions: np.ndarray, threshold: float, iou_threshold: float, max_detections: int) -> Candidates:
    """[N, 5 + C] (cx, cy, w, h, objectness, C class probabilities) -> as :func:`decode_yolo`, each
    class's score being objectness x its probability."""
    if predictions.ndim != 2 or predictions.shape[1] < 6:
        raise InvalidInputError(f"yolov5 predictions must be [candidates, 5 + classes], got {list(predictions.shape)}")
    rows = predictions.astype(np.float32)
    return suppress(rows[:, :4], rows[:, 5:] * rows[:, 4:5], threshold, iou_threshold, max_detections)[0]


def yolox_grid(network: geometry.Size) -> tuple[np.ndarray, np.ndarray]:
    """Each row's grid cell (x, y) [N, 2] and stride [N, 1], for a network input (H, W): YOLOX's
    ``demo_postprocess`` (strides 8, 16, 32; cells row-major, finest grid first)."""
    cells, strides = [], []
    for stride in YOLOX_STRIDES:
        xs, ys = np.meshgrid(np.arange(network[1] // stride), np.arange(network[0] // stride))
        cells.append(np.stack([xs, ys], axis=2).reshape(-1, 2))
        strides.append(np.full((cells[-1].shape[0], 1), stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def decode_yolox(
    predictions: np.ndarray, network: geometry.Size, threshold: float, iou_threshold: float, max_detections: int
) -> Candidates:
    """[N, 5 + C] raw grid outputs -> centre ``(xy + cell) * stride``, size ``exp(wh) * stride``; then as
    :func:`decode_yolov5`."""
    cells, strides = yolox_grid(network)
    if predictions.ndim != 2 or predictions.shape[1] < 6 or predictions.shape[0] != cells.shape[0]:
        raise InvalidInputError(
            f"yolox predictions for a {network[0]}x{network[1]} input must be [{cells.shape[0]} (its stride 8/16/32 "
            f"grid cells), 5 + classes], got {list(predictions.shape)}"
        )
    rows = predictions.astype(np.float32)
    with np.errstate(over="ignore"):  # a huge raw size is an infinite box, which no threshold keeps apart
        sizes = np.exp(rows[:, 2:4]) * strides
    boxes = np.concatenate([(rows[:, :2] + cells) * strides, sizes], axis=1)
    return suppress(boxes, rows[:, 5:] * rows[:, 4:5], threshold, iou_threshold, max_detections)[0]


def suppress(
    cxcywh: np.ndarray, class_scores: np.ndarray, threshold: float, iou_threshold: float, max_detections: int
) -> tuple[Candidates, np.ndarray]:
    """Candidates (centre x, y, width, height; a score per class) -> each one's best class, those at or above
    ``threshold``, class-wise NMS, the best ``max_detections``; and the kept candidates' row indices."""
    import cv2

    rows = cxcywh.astype(np.float32)
    ids = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(len(rows)), ids]
    keep = np.flatnonzero((scores >= threshold) & np.isfinite(rows).all(axis=1))
    if keep.size == 0:
        empty = Candidates(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), True)
        return empty, keep
    cx, cy, w, h = (rows[keep, i] for i in range(4))
    xywh = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    # OpenCV keeps classes apart by shifting class c's boxes by c * (largest coordinate + 1), which only
    # separates them when no coordinate is negative; moving every box alike changes no IoU.
    xywh[:, :2] -= min(float(xywh[:, :2].min()), 0.0)
    # Every candidate is already at or above the threshold (OpenCV keeps only scores above its own, so it
    # gets one below them all), and top_k stays 0: OpenCV applies it before suppression, which would
    # leave fewer than max_detections boxes where suppressed ones were among the best.
    kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores[keep].tolist(), ids[keep].tolist(), -1.0, iou_threshold)
    chosen = np.asarray(kept, dtype=np.int64).reshape(-1)
    # Best first (NMSBoxesBatched returns them so; a stable sort keeps that order among ties).
    chosen = chosen[np.argsort(-scores[keep][chosen], kind="stable")][:max_detections]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)[chosen]
    found = Candidates(boxes, scores[keep][chosen], ids[keep][chosen].astype(np.int64), True)
    return found, keep[chosen]


class DetectionPostprocessor:
    """Runner: detector output for a batch of images -> thresholded detections in original pixels."""

    def __init__(
        self,
        labels: Sequence[str],
        *,
        format: str = TORCHVISION,
        label_offset: int = 0,
        rule: geometry.ResizeRule | None = None,
        default_score_threshold: float = t.DEFAULT_SCORE_THRESHOLD,
        default_max_detections: int = t.DEFAULT_MAX_DETECTIONS,
        default_iou_threshold: float = DEFAULT_IOU_THRESHOLD,
        keypoint_spec: keypoints.KeypointSpec | None = None,
    ) -> None:
        if format not in FORMATS:
            raise ConfigError(f"parameter 'format' must be one of {', '.join(FORMATS)}, got '{format}'")
        if format in KEYPOINT_FORMATS and keypoint_spec is None:
            raise ConfigError(f"format '{format}' needs the keypoints' names (parameter 'keypoint_names')")
        self.keypoint_spec = keypoint_spec
        self.labels = label_table(labels)
        self.format = format
        self.label_offset = label_offset
        self.rule = rule or geometry.ResizeRule(geometry.KEEP_ASPECT, min_size=800, max_size=1333)
        self.default_score_threshold = default_score_threshold
        self.default_max_detections = default_max_detections
        self.default_iou_threshold = default_iou_threshold
        self.parameters = request_parameters(format)

    @classmethod
    def from_config(cls, config: ModelConfig) -> DetectionPostprocessor:
        labels = labels_of(config)
        defaults = {
            t.SCORE_THRESHOLD: config.setting("default_score_threshold", str(t.DEFAULT_SCORE_THRESHOLD)),
            t.MAX_DETECTIONS: config.setting("default_max_detections", str(t.DEFAULT_MAX_DETECTIONS)),
            IOU_THRESHOLD: config.setting("default_iou_threshold", str(DEFAULT_IOU_THRESHOLD)),
        }
        try:
            threshold = parse_score_threshold(defaults)
            max_detections = parse_max_detections(defaults)
            iou = parse_iou_threshold(defaults)
        except InvalidParameterError as exc:
            raise ConfigError(f"model '{config.name}': default {exc}") from None
        try:
            return cls(
                labels,
                format=config.setting("format", TORCHVISION),
                label_offset=config.int_setting("label_offset", 0),
                rule=geometry.rule_of(config, default=geometry.KEEP_ASPECT),
                default_score_threshold=threshold,
                default_max_detections=max_detections,
                default_iou_threshold=iou,
                keypoint_spec=keypoint_spec_of(config),
            )
        except ConfigError as exc:
            raise ConfigError(f"model '{config.name}': {exc}") from None

    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray]]:
        return [self.run_one(request) for request in requests]

    def _check(self, inputs: Mapping[str, np.ndarray]) -> int:
        original, resized = inputs[t.ORIGINAL_SIZE], inputs[t.RESIZED_SIZE]
        batch = original.shape[0]
        shapes = {name: list(value.shape) for name, value in inputs.items()}
        if self.format in NMS_FORMATS:
            consistent = inputs[t.RAW_PREDICTIONS].ndim == 3 and inputs[t.RAW_PREDICTIONS].shape[0] == batch
            if self.format == YOLO_SEG:
                prototypes = inputs[t.RAW_PROTOTYPES]
                consistent = consistent and prototypes.ndim == 4 and prototypes.shape[0] == batch
        else:
            boxes, scores, ids = inputs[t.RAW_BOXES], inputs[t.RAW_SCORES], inputs[t.RAW_LABELS]
            consistent = (
                boxes.ndim == 3
                and boxes.shape[2] == 4
                and boxes.shape[0] == batch
                and scores.shape == boxes.shape[:2]
                and ids.shape == boxes.shape[:2]
                and (t.RAW_COUNT not in inputs or inputs[t.RAW_COUNT].shape[0] == batch)
            )
            if self.format == MASKRCNN:
                masks = inputs[t.RAW_MASKS]
                consistent = consistent and masks.ndim in (4, 5) and masks.shape[:2] == boxes.shape[:2]
            if self.format == KEYPOINTRCNN and self.keypoint_spec is not None:
                points, point_scores = inputs[t.RAW_KEYPOINTS], inputs[t.RAW_KEYPOINT_SCORES]
                joints = self.keypoint_spec.count
                consistent = consistent and points.shape == (*boxes.shape[:2], joints, 3)
                consistent = consistent and point_scores.shape == (*boxes.shape[:2], joints)
        if not consistent or original.shape != (batch, 2) or resized.shape != (batch, 2):
            raise InvalidInputError(f"detection_postprocess: inconsistent inputs ({shapes})")
        return batch

    def run_one(self, request: RequestData) -> dict[str, np.ndarray]:
        """A request of B images: per image its COUNT detections, padded to the request's largest COUNT."""
        refuse_unknown(request.parameters, self.parameters)
        threshold = parse_score_threshold(request.parameters, self.default_score_threshold)
        max_detections = parse_max_detections(request.parameters, self.default_max_detections)
        nms = self.format in NMS_FORMATS
        iou = parse_iou_threshold(request.parameters, self.default_iou_threshold) if nms else 0.0
        inputs = request.inputs
        batch = self._check(inputs)
        results = []
        for i in range(batch):
            original, resized = inputs[t.ORIGINAL_SIZE][i], inputs[t.RESIZED_SIZE][i]
            if min(*original, *resized) <= 0:
                raise InferenceError(
                    f"image sizes must be positive, got resized {resized.tolist()} original {original.tolist()}"
                )
            placement = self.rule.placement((int(original[0]), int(original[1])), (int(resized[0]), int(resized[1])))
            if self.format == TORCHVISION:
                found = decode_torchvision(inputs, i)
            elif self.format == MASKRCNN:
                found = decode_torchvision(inputs, i)
                masks = inputs[t.RAW_MASKS][i]
                fields = masks.reshape(masks.shape[0], *masks.shape[-2:])[: len(found.scores)]
                found = replace(found, masks=instances.MaskSource(MASK_THRESHOLD, False, masks=fields))
            elif self.format == KEYPOINTRCNN:
                found = decode_torchvision(inputs, i)
                n = len(found.scores)
                points = inputs[t.RAW_KEYPOINTS][i][:n, :, :2]
                confidence = inputs[t.RAW_KEYPOINT_SCORES][i][:n, :, None]
                found = replace(found, keypoints=np.concatenate([points, confidence], axis=2).astype(np.float32))
            elif self.format == TF_OD:
                found = decode_tf_od(inputs, i, placement.network)
            elif self.format == YOLOV5:
                found = decode_yolov5(inputs[t.RAW_PREDICTIONS][i], threshold, iou, max_detections)
            elif self.format == YOLOX:
                found = decode_yolox(inputs[t.RAW_PREDICTIONS][i], placement.network, threshold, iou, max_detections)
            else:
                prototypes = inputs[t.RAW_PROTOTYPES][i] if self.format == YOLO_SEG else None
                pose = self.keypoint_spec if self.format == YOLO_POSE else None
                found = decode_yolo(inputs[t.RAW_PREDICTIONS][i], threshold, iou, max_detections, prototypes, pose)
            results.append(self.one_image(found, placement, threshold, max_detections))
        width = max((len(r[t.SCORES]) for r in results), default=0)
        batched = {
            name: np.stack([r[name] if name in SAME_FOR_EVERY_IMAGE else pad_rows(r[name], width) for r in results])
            for name in (results[0] if results else ())
            if name != t.INSTANCE_MAP
        }
        if self.format in INSTANCE_FORMATS:
            batched[t.INSTANCE_MAP] = instances.pad_maps([r[t.INSTANCE_MAP] for r in results], t.INSTANCE_PAD)
        return batched

    def one_image(
        self, found: Candidates, placement: geometry.Placement, threshold: float, max_detections: int
    ) -> dict[str, np.ndarray]:
        keep = (
            np.arange(len(found.scores)) if found.ranked else select_detections(found.scores, threshold, max_detections)
        )
        class_ids = (found.class_ids[keep] + self.label_offset).astype(np.int32)
        boxes = geometry.boxes_to_original(found.boxes[keep], placement)
        answer = {
            t.BOXES: boxes,
            t.SCORES: found.scores[keep].astype(np.float32),
            t.CLASS_IDS: class_ids,
            t.LABELS: label_names(class_ids, self.labels),
            t.COUNT: np.array([len(keep)], dtype=np.int32),
        }
        if self.format in INSTANCE_FORMATS:
            masks = found.masks
            if masks is None:
                raise InferenceError(f"format '{self.format}' decoded no masks")
            answer[t.INSTANCE_MAP] = instances.instance_map(boxes, masks.fields(keep), masks, placement)
        if self.format in KEYPOINT_FORMATS and self.keypoint_spec is not None:
            if found.keypoints is None:
                raise InferenceError(f"format '{self.format}' decoded no keypoints")
            answer[t.KEYPOINTS] = keypoints.to_original(found.keypoints[keep], placement)
            answer[t.KEYPOINT_NAMES] = self.keypoint_spec.names_table()
            answer[t.SKELETON] = self.keypoint_spec.skeleton_table()
        return answer


def keypoint_spec_of(config: ModelConfig) -> keypoints.KeypointSpec | None:
    """The keypoints' names, skeleton and row shape from the config's parameters (None without names)."""
    names = config.setting("keypoint_names", "")
    if not names:
        return None
    return keypoints.keypoint_spec(names, config.setting("skeleton", "[]"), config.setting("keypoint_shape", ""), "")
