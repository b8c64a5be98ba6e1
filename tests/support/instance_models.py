"""Tiny ONNX graphs with the published tensor contracts of instance-segmentation and keypoint exports
(constant answers added to 0 x the input, so they run on any image): Ultralytics' segment head (``output0``
[B, 4 + C + M, N], ``output1`` [B, M, h, w]) and pose head (``output0`` [B, 4 + C + J x 3, N]), torchvision's
Keypoint R-CNN outputs (``boxes``, ``labels``, ``scores``, ``keypoints``, ``keypoints_scores``)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def constant_outputs_model(name: str, size: tuple[int, int], outputs: dict[str, np.ndarray]) -> onnx.ModelProto:
    """``images`` float [batch, 3, H, W] -> each of ``outputs`` (a per-image array, float32 or int64), tiled
    over the batch."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),  # [batch]
        helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
    ]
    initialisers = [numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    infos = []
    for index, (out, value) in enumerate(outputs.items()):
        const = f"value{index}"
        axes = f"axes{index}"
        initialisers += [
            numpy_helper.from_array(value[None].astype(np.float32), const),
            numpy_helper.from_array(np.arange(1, value.ndim + 1, dtype=np.int64), axes),
        ]
        integer = value.dtype == np.int64
        nodes += [
            helper.make_node("Unsqueeze", ["zeros", axes], [f"shaped{index}"]),  # [batch, 1, ...]
            helper.make_node("Add", [f"shaped{index}", const], [f"sum{index}" if integer else out]),
        ]
        if integer:
            nodes.append(helper.make_node("Cast", [f"sum{index}"], [out], to=TensorProto.INT64))
        dims: list[str | int] = ["batch", *(int(d) for d in value.shape)]
        infos.append(helper.make_tensor_value_info(out, TensorProto.INT64 if integer else TensorProto.FLOAT, dims))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, *size])],
        infos,
        initialisers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def yolo_seg_model(
    size: tuple[int, int] = (64, 64), classes: int = 2, masks: int = 2, candidates: int = 4, proto: int = 16
) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    output0 = rng.uniform(0, 1, (4 + classes + masks, candidates)).astype(np.float32)
    output1 = rng.normal(0, 1, (masks, proto, proto)).astype(np.float32)
    return constant_outputs_model("tiny_yolo_seg", size, {"output0": output0, "output1": output1})


# yolo-pose candidates in a 64 x 64 network input: (x1, y1, x2, y2), class scores (2 classes), then 3 keypoints
# (x, y, visibility). The second overlaps the first (IoU 0.76: suppressed at 0.45), the third stands apart.
POSE_CANDIDATES = (
    ((8.0, 10.0, 30.0, 50.0), (0.9, 0.1), ((12.0, 14.0, 0.95), (20.5, 30.25, 0.3), (28.0, 48.0, 0.7))),
    ((10.0, 12.0, 32.0, 52.0), (0.8, 0.0), ((1.0, 1.0, 0.9), (2.0, 2.0, 0.9), (3.0, 3.0, 0.9))),
    ((40.0, 20.0, 60.0, 44.0), (0.2, 0.6), ((41.0, 21.0, 0.6), (59.0, 43.0, 0.99), (50.0, 30.0, 0.1))),
)


def yolo_pose_model(size: tuple[int, int] = (64, 64)) -> onnx.ModelProto:
    columns = []
    for (x1, y1, x2, y2), scores, points in POSE_CANDIDATES:
        flat = [v for point in points for v in point]
        columns.append([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, *scores, *flat])
    output0 = np.array(columns, np.float32).T  # [4 + 2 + 9, 3]
    return constant_outputs_model("tiny_yolo_pose", size, {"output0": output0})


# Keypoint R-CNN rows in a 48 x 64 (height, width) network input: 3 detections (the last below 0.5) of 2
# keypoints each.
KEYPOINTRCNN_ROWS = (
    ((4.0, 6.0, 30.0, 40.0), 1, 0.95, ((10.0, 12.0), (20.0, 35.5)), (3.5, -1.0)),
    ((33.0, 2.0, 60.0, 46.0), 1, 0.7, ((40.0, 5.0), (59.5, 45.0)), (0.2, 7.0)),
    ((0.0, 0.0, 5.0, 5.0), 1, 0.3, ((1.0, 1.0), (2.0, 2.0)), (1.0, 1.0)),
)


def keypointrcnn_model(size: tuple[int, int] = (48, 64)) -> onnx.ModelProto:
    rows = KEYPOINTRCNN_ROWS
    return constant_outputs_model(
        "tiny_keypointrcnn",
        size,
        {
            "boxes": np.array([r[0] for r in rows], np.float32),
            "labels": np.array([r[1] for r in rows], np.int64),
            "scores": np.array([r[2] for r in rows], np.float32),
            "keypoints": np.array([[[x, y, 1.0] for x, y in r[3]] for r in rows], np.float32),
            "keypoints_scores": np.array([r[4] for r in rows], np.float32),
        },
    )


def unbatched_constant_model(name: str, outputs: dict[str, np.ndarray]) -> onnx.ModelProto:
    """torchvision's single-image export signature: ``images`` float [3, H, W] (any size) -> each of
    ``outputs`` (float32 or int64) as is, its first dimension free (torchvision's detection count)."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[0, 1, 2], keepdims=0),  # a scalar
        helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
    ]
    initialisers = [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    infos = []
    for index, (out, value) in enumerate(outputs.items()):
        const = f"value{index}"
        initialisers.append(numpy_helper.from_array(value.astype(np.float32), const))
        integer = value.dtype == np.int64
        nodes.append(helper.make_node("Add", ["zeros", const], [f"sum{index}" if integer else out]))
        if integer:
            nodes.append(helper.make_node("Cast", [f"sum{index}"], [out], to=TensorProto.INT64))
        dims: list[str | int] = ["n", *(int(d) for d in value.shape[1:])]
        infos.append(helper.make_tensor_value_info(out, TensorProto.INT64 if integer else TensorProto.FLOAT, dims))
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("images", TensorProto.FLOAT, [3, "h", "w"])], infos, initialisers
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def maskrcnn_masks(size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """[3, 1, H, W] probabilities: a hard rectangle, a smooth blob (its 0.5 contour an ellipse), and one
    overlapping both."""
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    masks = np.zeros((3, 1, height, width), np.float32)
    masks[0, 0, 6:30, 4:28] = 0.9
    masks[1, 0] = np.exp(-(((xs - 44) / 12) ** 2 + ((ys - 24) / 9) ** 2))  # 0.5 where the ellipse's ... = ln 2
    masks[2, 0, 20:44, 20:50] = 0.7
    return masks


MASKRCNN_BOXES = ((4.0, 6.0, 28.0, 30.0), (32.0, 14.0, 56.0, 34.0), (20.0, 20.0, 50.0, 44.0))
MASKRCNN_SCORES = (0.95, 0.85, 0.6)


def maskrcnn_model() -> onnx.ModelProto:
    """torchvision's Mask R-CNN export signature (``boxes``, ``labels``, ``scores``, ``masks`` [K, 1, H, W])
    with three fixed detections over a 48 x 64 network input."""
    return unbatched_constant_model(
        "tiny_maskrcnn",
        {
            "boxes": np.array(MASKRCNN_BOXES, np.float32),
            "labels": np.array([1, 2, 1], np.int64),
            "scores": np.array(MASKRCNN_SCORES, np.float32),
            "masks": maskrcnn_masks(),
        },
    )
