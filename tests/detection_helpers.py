"""Known-answer material for the detection tests (independent of the code under test).

- :func:`bright_box_detector`: an ONNX graph with the ``faster_rcnn`` tensor contract whose one
  "detection" is the bounding box of the bright pixels of its (normalised) input, score 0.99,
  COCO id 1 (person), in input pixels, x2/y2 exclusive (torchvision's continuous convention).
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
    const = lambda name, value, dtype=np.float32: numpy_helper.from_array(np.array(value, dtype=dtype), name)  # noqa: E731
    nodes = [
        helper.make_node("Gather", ["images", "zero"], ["first"], axis=0),  # [3, H, W]
        helper.make_node("Gather", ["first", "zero"], ["red"], axis=0),  # [H, W]
        helper.make_node("Greater", ["red", "threshold"], ["bright"]),
        helper.make_node("Cast", ["bright"], ["brightf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["brightf"], ["rows"], axes=[1], keepdims=0),  # [H]
        helper.make_node("ReduceMax", ["brightf"], ["cols"], axes=[0], keepdims=0),  # [W]
        helper.make_node("NonZero", ["rows"], ["row_idx"]),
        helper.make_node("NonZero", ["cols"], ["col_idx"]),
        helper.make_node("ReduceMin", ["row_idx"], ["y1i"], keepdims=0),
        helper.make_node("ReduceMax", ["row_idx"], ["y2m"], keepdims=0),
        helper.make_node("ReduceMin", ["col_idx"], ["x1i"], keepdims=0),
        helper.make_node("ReduceMax", ["col_idx"], ["x2m"], keepdims=0),
        helper.make_node("Add", ["y2m", "one"], ["y2i"]),
        helper.make_node("Add", ["x2m", "one"], ["x2i"]),
        helper.make_node("Reshape", ["x1i", "shape1"], ["x1r"]),
        helper.make_node("Reshape", ["y1i", "shape1"], ["y1r"]),
        helper.make_node("Reshape", ["x2i", "shape1"], ["x2r"]),
        helper.make_node("Reshape", ["y2i", "shape1"], ["y2r"]),
        helper.make_node("Concat", ["x1r", "y1r", "x2r", "y2r"], ["box_i"], axis=0),
        helper.make_node("Cast", ["box_i"], ["box_f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["box_f", "shape114"], ["boxes"]),
        helper.make_node("Identity", ["score"], ["scores"]),
        helper.make_node("Identity", ["label"], ["labels"]),
    ]
    initializers = [
        const("zero", 0, np.int64),
        const("one", 1, np.int64),
        const("threshold", BRIGHT_THRESHOLD),
        const("shape1", [1], np.int64),
        const("shape114", [1, 1, 4], np.int64),
        const("score", [[STAND_IN_SCORE]]),
        const("label", [[PERSON]], np.int64),
    ]
    graph = helper.make_graph(
        nodes,
        "bright_box_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", "detections", 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "detections"]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, ["batch", "detections"]),
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
