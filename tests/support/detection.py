"""Known-answer material for the detection tests (independent of the code under test).

- :func:`bright_box_detector`: an ONNX graph with the ``faster_rcnn`` tensor signature whose one
  "detection" per image of the batch is the bounding box of the bright pixels of that image's
  (normalised) input inside its ``image_sizes``, score 0.99, COCO id 1 (person), in input
  pixels, x2/y2 exclusive (torchvision's continuous convention).
- :func:`bright_rectangle_image`: a dark RGB image of any size with a white rectangle at a
  known place, so the right answer in original pixels is known before anything runs.
- :func:`lively_random_state_dict`: a seeded random MobileNetV3 Faster R-CNN state dict whose
  feature scale is repaired so that it gives varied, confident detections (plain random
  weights give none above torchvision's internal 0.05 floor).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# A white pixel's red channel after ImageNet normalisation is (1 - 0.485) / 0.229 = 2.25; the
# dark background (50) gives -1.26. Half-way between them is the edge of the rectangle.
BRIGHT_THRESHOLD = 0.5
BACKGROUND = 50
STAND_IN_SCORE = 0.99
PERSON = 1


def bright_box_detector() -> onnx.ModelProto:
    """Per image of the batch, the bounding box of its bright red-channel pixels (see module doc).

    Only pixels inside the image's ``image_sizes`` count (the batch padding is not image, as for
    the real detector). Every image gets exactly one detection: ``count`` is 1.
    """
    const = lambda name, value, dtype=np.float32: numpy_helper.from_array(np.array(value, dtype=dtype), name)  # noqa: E731
    nodes = [
        helper.make_node("Gather", ["images", "zero"], ["red"], axis=1),  # [N, H, W]
        helper.make_node("Greater", ["red", "threshold"], ["bright"]),
        helper.make_node("Cast", ["bright"], ["brightf"], to=TensorProto.FLOAT),
        helper.make_node("Shape", ["images"], ["shape"]),
        helper.make_node("Shape", ["image_sizes"], ["sizes_shape"]),
        helper.make_node("Gather", ["sizes_shape", "zero1"], ["n"], axis=0),  # [1]
        helper.make_node("Concat", ["n", "one1"], ["n_by_1"], axis=0),  # [N, 1] as a shape
        helper.make_node("Cast", ["image_sizes"], ["sizes_f"], to=TensorProto.FLOAT),
    ]
    ends = {}
    for axis_name, dim, reduce_axis, size_index in (("y", 2, 2, 0), ("x", 3, 1, 1)):
        a = axis_name
        nodes += [
            # any bright pixel per row (y) or column (x): [N, H] or [N, W]
            helper.make_node("ReduceMax", ["brightf"], [f"{a}_any"], axes=[reduce_axis], keepdims=0),
            helper.make_node("Gather", ["shape", f"dim{dim}"], [f"{a}_len"], axis=0),
            helper.make_node("Cast", [f"{a}_len"], [f"{a}_lenf"], to=TensorProto.FLOAT),
            helper.make_node("Range", ["zerof", f"{a}_lenf", "onef"], [f"{a}_idx"]),  # [H] or [W]
            helper.make_node("Gather", ["sizes_f", f"size{size_index}"], [f"{a}_limit"], axis=1),  # [N, 1]
            helper.make_node("Less", [f"{a}_idx", f"{a}_limit"], [f"{a}_inside"]),  # [N, H]
            helper.make_node("Greater", [f"{a}_any", "half"], [f"{a}_bright"]),
            helper.make_node("And", [f"{a}_bright", f"{a}_inside"], [f"{a}_hit"]),
            helper.make_node("Where", [f"{a}_hit", f"{a}_idx", "big"], [f"{a}_lo_c"]),
            helper.make_node("Where", [f"{a}_hit", f"{a}_idx", "minus_one"], [f"{a}_hi_c"]),
            helper.make_node("ReduceMin", [f"{a}_lo_c"], [f"{a}1"], axes=[1], keepdims=1),  # [N, 1]
            helper.make_node("ReduceMax", [f"{a}_hi_c"], [f"{a}_last"], axes=[1], keepdims=1),
            helper.make_node("Add", [f"{a}_last", "onef"], [f"{a}2"]),  # exclusive edge
        ]
        ends[a] = (f"{a}1", f"{a}2")
    nodes += [
        helper.make_node("Concat", [ends["x"][0], ends["y"][0], ends["x"][1], ends["y"][1]], ["box"], axis=1),
        helper.make_node("Unsqueeze", ["box", "one1"], ["boxes"]),  # [N, 1, 4]
        helper.make_node("Expand", ["score", "n_by_1"], ["scores"]),
        helper.make_node("Expand", ["label", "n_by_1"], ["labels"]),
        helper.make_node("Expand", ["one_count", "n_by_1"], ["count"]),
    ]
    initializers = [
        const("zero", 0, np.int64),
        const("zero1", [0], np.int64),
        const("one1", [1], np.int64),
        const("dim2", 2, np.int64),
        const("dim3", 3, np.int64),
        const("size0", [0], np.int64),
        const("size1", [1], np.int64),
        const("zerof", 0.0),
        const("onef", 1.0),
        const("half", 0.5),
        const("big", 1e9),
        const("minus_one", -1.0),
        const("threshold", BRIGHT_THRESHOLD),
        const("score", [[STAND_IN_SCORE]]),
        const("label", [[PERSON]], np.int64),
        const("one_count", [[1]], np.int64),
    ]
    graph = helper.make_graph(
        nodes,
        "bright_box_detector",
        [
            helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"]),
            helper.make_tensor_value_info("image_sizes", TensorProto.INT64, ["batch", 2]),
        ],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", "detections", 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "detections"]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, ["batch", "detections"]),
            helper.make_tensor_value_info("count", TensorProto.INT64, ["batch", 1]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def bright_rectangle_image(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """RGB uint8; pixels x1 <= x < x2, y1 <= y < y2 white, the rest dark grey with a faint gradient."""
    x1, y1, x2, y2 = box
    ramp = (BACKGROUND + np.linspace(0, 20, width)).astype(np.uint8)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = ramp[None, :, None]
    image[y1:y2, x1:x2] = 255
    return image


def encode(rgb: np.ndarray, ext: str, **params) -> bytes:
    import cv2

    flags = [cv2.IMWRITE_JPEG_QUALITY, params.get("quality", 95)] if ext == ".jpg" else []
    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), flags)
    if not ok:
        raise RuntimeError(f"cannot encode {ext}")
    return data.tobytes()


def exif_rotated_jpeg(upright_rgb: np.ndarray, orientation: int = 6) -> bytes:
    """A JPEG whose stored pixels are ``upright_rgb`` turned so that EXIF ``orientation`` rights it.

    Orientation 6 means "rotate 90 degrees clockwise to display": the stored array is the upright
    one turned 90 degrees counter-clockwise.
    """
    import io

    from PIL import Image

    if orientation != 6:
        raise ValueError("only orientation 6 is needed here")
    stored = np.ascontiguousarray(np.rot90(upright_rgb, k=1))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def lively_random_state_dict(path: Path, seed: int = 0) -> Path:
    """Save the state dict described in the module docstring to ``path``."""
    import torch
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    torch.manual_seed(seed)
    model = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=91).eval()
    state = model.state_dict()
    for key in state:
        if key.startswith("backbone.fpn.") and key.endswith("weight"):
            state[key] = state[key] * 1e4  # random MobileNetV3 features are ~1e-8; bring them to ~1
    state["roi_heads.box_predictor.cls_score.weight"] = state["roi_heads.box_predictor.cls_score.weight"] * 10
    torch.save(state, str(path))
    return path


def reference_preprocess(rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """OpenCV/NumPy version of torchvision's Faster R-CNN preprocessing (no DALI involved).

    scale = min(800 / shorter, 1333 / longer); size = floor(side * scale); bilinear on float
    pixels; (x / 255 - mean) / std; NCHW float32. Returns the input and its (height, width).
    """
    import math

    import cv2

    height, width = rgb.shape[:2]
    scale = min(800 / min(height, width), 1333 / max(height, width))
    new_h, new_w = math.floor(height * scale), math.floor(width * scale)
    resized = cv2.resize(rgb.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255
    normalised = (resized - mean) / std
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None]), (new_h, new_w)
