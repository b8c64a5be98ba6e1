"""Tiny ONNX models of every post-processing format, the specs that serve them, and test images.

Models (deterministic, built with ``onnx.helper``, small enough for a CPU): each finds the red,
blue (detectors) or red and green (segmenters) pixels of its input with a colour rule, so a wrong
resize, crop, padding, layout or colour order changes its answer:

- :func:`yolo_detector`: Ultralytics-style ``output0`` [B, 4 + 2, 5] (see :data:`YOLO_CANDIDATES`);
- :func:`tfod_detector`: the TensorFlow Object Detection API's outputs, uint8 NHWC input with a fixed
  batch of 1 (the graph itself batches);
- :func:`torchvision_unbatched_detector`: a single-image torchvision export, input [3, H, W] and
  outputs without a batch dimension (add-model must add one);
- :func:`nhwc_segmenter`: NHWC logits at half the input resolution;
- :func:`classmap_segmenter`: int64 class ids, reading its input in BGR order;
- :func:`pets_classifier`: the real MobileNetV2 with a 5-class head (five rows of its 1000 logits).

Also: the specs of one ensemble per format (:data:`FORMAT_SPECS`) and of the two real classifiers, a
small TOML writer, and synthetic block images. The references to judge them by are in
``tests/support/format_references.py``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

OPSET = 17
# Colour rule on RGB in 0..1: a class's pixels are where its channel leads the other two by more than this.
LEAD = 0.4
GRAY, RED, GREEN, BLUE = (128, 128, 128), (230, 20, 20), (20, 230, 20), (20, 20, 230)
RED_CLASS, BLUE_CLASS = 0, 1  # the detectors' own class ids (tf-od, yolo); torchvision: 1, 2
SEG_LABELS = ("background", "red", "green")
DET_LABELS = ("background", "red", "blue")  # with label_offset 1 for 0-based model ids


# -- building graphs ----------------------------------------------------------------------------------
class Graph:
    """A few lines per node: constants as initialisers, nodes by op name, unique intermediate names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, value, dtype=np.float32) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.initializers.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, outputs: int = 1, **attrs) -> str:
        names = []
        for _ in range(outputs):
            self.count += 1
            names.append(f"t{self.count}")
        if out is not None:
            names = [out]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names  # type: ignore[return-value]

    def split3(self, x: str, axis: int) -> list[str]:
        return self.op("Split", x, self.const([1, 1, 1], np.int64), outputs=3, axis=axis)  # type: ignore[return-value]

    def lead(self, channel: str, other1: str, other2: str) -> str:
        """How much ``channel`` leads the larger of the two others."""
        return self.op("Sub", channel, self.op("Max", other1, other2))

    def model(self, name: str, inputs, outputs) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
        onnx.checker.check_model(model, full_check=True)
        return model


def _bounding_box(g: Graph, mask: str) -> tuple[str, str, str, str]:
    """x1, y1, x2, y2 [N, 1] (x2/y2 exclusive, network-input pixels) of the True pixels of ``mask`` [N, H, W]."""
    maskf = g.op("Cast", mask, to=TensorProto.FLOAT)
    shape = g.op("Shape", maskf)
    ends = {}
    for axis_name, dim, reduce_axis in (("y", 1, 2), ("x", 2, 1)):
        hit = g.op("Greater", g.op("ReduceMax", maskf, axes=[reduce_axis], keepdims=0), g.const(0.5))  # [N, L]
        length = g.op("Cast", g.op("Gather", shape, g.const(dim, np.int64), axis=0), to=TensorProto.FLOAT)
        index = g.op("Range", g.const(0.0), length, g.const(1.0))
        low = g.op("ReduceMin", g.op("Where", hit, index, g.const(1e6)), axes=[1], keepdims=1)
        high = g.op("ReduceMax", g.op("Where", hit, index, g.const(-1.0)), axes=[1], keepdims=1)
        ends[axis_name] = (low, g.op("Add", high, g.const(1.0)))
    return ends["x"][0], ends["y"][0], ends["x"][1], ends["y"][1]


def _colour_boxes(g: Graph, rgb01_nchw: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The bounding boxes of the red and of the blue pixels of an RGB 0..1 NCHW tensor."""
    r, gr, b = g.split3(rgb01_nchw, axis=1)
    red = g.op("Greater", g.op("Squeeze", g.lead(r, gr, b), g.const([1], np.int64)), g.const(LEAD))
    blue = g.op("Greater", g.op("Squeeze", g.lead(b, r, gr), g.const([1], np.int64)), g.const(LEAD))
    return _bounding_box(g, red), _bounding_box(g, blue)


# (class 0 score, class 1 score, box) per YOLO candidate, in this order; "red+2" is the red box grown
# by 2 pixels on every side (same class as the red box: NMS suppresses it unless the IoU threshold is
# above their IoU); candidate 3 is the red box again as class 1 (another class: never suppressed by
# the red box); candidate 4 scores 0.2 at most (below the default threshold 0.25).
YOLO_CANDIDATES = (
    (0.9, 0.0, "red"),
    (0.8, 0.3, "red+2"),
    (0.0, 0.85, "blue"),
    (0.1, 0.7, "red"),
    (0.2, 0.1, "blue"),
)


def yolo_detector(height: int, width: int) -> onnx.ModelProto:
    """``images`` float [batch, 3, H, W] (pixel / 255, RGB) -> ``output0`` [batch, 6, 5] (see YOLO_CANDIDATES)."""
    g = Graph()
    red, blue = _colour_boxes(g, "images")

    def cxcywh(box, grow: float):
        x1, y1, x2, y2 = box
        cx = g.op("Mul", g.op("Add", x1, x2), g.const(0.5))
        cy = g.op("Mul", g.op("Add", y1, y2), g.const(0.5))
        w = g.op("Add", g.op("Sub", x2, x1), g.const(2 * grow))
        h = g.op("Add", g.op("Sub", y2, y1), g.const(2 * grow))
        return [cx, cy, w, h]

    ones = g.op("Add", g.op("Mul", red[0], g.const(0.0)), g.const(1.0))  # [N, 1]
    columns = []
    for score0, score1, which in YOLO_CANDIDATES:
        box = red if which.startswith("red") else blue
        parts = cxcywh(box, 2.0 if which.endswith("+2") else 0.0)
        parts += [g.op("Mul", ones, g.const(score0)), g.op("Mul", ones, g.const(score1))]
        columns.append(g.op("Unsqueeze", g.op("Concat", *parts, axis=1), g.const([2], np.int64)))  # [N, 6, 1]
    g.op("Concat", *columns, axis=2, out="output0")
    return g.model(
        "tiny_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 6, len(YOLO_CANDIDATES)])],
    )


# tf-od rows: red box (score 0.9, class 0), blue box (0.8, class 1), then a row beyond num_detections (2)
# with the highest score of all: the post-processing must not read it.
TFOD_ROWS = ((0.9, RED_CLASS, "red"), (0.8, BLUE_CLASS, "blue"), (0.95, RED_CLASS, "beyond"))
TFOD_COUNT = 2


def tfod_detector(height: int, width: int) -> onnx.ModelProto:
    """``input_tensor`` uint8 [1, H, W, 3] (fixed batch 1, RGB) -> the TF Object Detection API's four outputs."""
    g = Graph()
    pixels = g.op("Div", g.op("Cast", "input_tensor", to=TensorProto.FLOAT), g.const(255.0))
    rgb01 = g.op("Transpose", pixels, perm=[0, 3, 1, 2])
    red, blue = _colour_boxes(g, rgb01)
    ones = g.op("Add", g.op("Mul", red[0], g.const(0.0)), g.const(1.0))  # [N, 1]
    rows = []
    for _, _, which in TFOD_ROWS:
        if which == "beyond":
            corners = [g.op("Mul", ones, g.const(v)) for v in (0.0, 0.0, 1.0, 1.0)]
        else:
            x1, y1, x2, y2 = red if which == "red" else blue
            corners = [
                g.op("Div", y1, g.const(float(height))),
                g.op("Div", x1, g.const(float(width))),
                g.op("Div", y2, g.const(float(height))),
                g.op("Div", x2, g.const(float(width))),
            ]
        rows.append(g.op("Unsqueeze", g.op("Concat", *corners, axis=1), g.const([1], np.int64)))  # [N, 1, 4]
    g.op("Concat", *rows, axis=1, out="detection_boxes")
    g.op("Mul", ones, g.const([[s for s, _, _ in TFOD_ROWS]]), out="detection_scores")
    g.op("Mul", ones, g.const([[float(c) for _, c, _ in TFOD_ROWS]]), out="detection_classes")
    g.op("Squeeze", g.op("Mul", ones, g.const(float(TFOD_COUNT))), g.const([1], np.int64), out="num_detections")
    k = len(TFOD_ROWS)
    return g.model(
        "tiny_tfod",
        [helper.make_tensor_value_info("input_tensor", TensorProto.UINT8, [1, height, width, 3])],
        [
            helper.make_tensor_value_info("detection_boxes", TensorProto.FLOAT, [1, k, 4]),
            helper.make_tensor_value_info("detection_scores", TensorProto.FLOAT, [1, k]),
            helper.make_tensor_value_info("detection_classes", TensorProto.FLOAT, [1, k]),
            helper.make_tensor_value_info("num_detections", TensorProto.FLOAT, [1]),
        ],
    )


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision rows: (label, score) of the red box and of the blue box (labels: DET_LABELS lines).
TORCHVISION_ROWS = ((1, 0.9), (2, 0.6))


def torchvision_unbatched_detector() -> onnx.ModelProto:
    """``image`` float [3, H, W] (ImageNet-normalised RGB) -> ``boxes`` [2, 4], ``labels`` [2], ``scores`` [2]."""
    g = Graph()
    batched = g.op("Unsqueeze", "image", g.const([0], np.int64))
    std = g.const(np.array(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1))
    mean = g.const(np.array(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1))
    rgb01 = g.op("Add", g.op("Mul", batched, std), mean)
    red, blue = _colour_boxes(g, rgb01)
    boxes = g.op("Concat", g.op("Concat", *red, axis=1), g.op("Concat", *blue, axis=1), axis=0)  # [2, 4]
    g.op("Identity", boxes, out="boxes")
    g.op("Identity", g.const([label for label, _ in TORCHVISION_ROWS], np.int64), out="labels")
    g.op("Identity", g.const([score for _, score in TORCHVISION_ROWS]), out="scores")
    return g.model(
        "tiny_torchvision",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [3, "height", "width"])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [2, 4]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [2]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [2]),
        ],
    )


def opset11_unbatched_detector() -> onnx.ModelProto:
    """An opset-11 single-image detector (Squeeze/Unsqueeze take attributes there): ``image`` [3, H, W];
    ``boxes`` [1, 4] a constant initialiser output, ``labels`` [1], ``scores`` [1] the image's largest value."""
    g = Graph()
    g.initializers.append(numpy_helper.from_array(np.array([[1.0, 2.0, 5.0, 7.0]], np.float32), "boxes"))
    g.op("Identity", g.const([1], np.int64), out="labels")
    g.op("Reshape", g.op("ReduceMax", "image", axes=[0, 1, 2], keepdims=0), g.const([1], np.int64), out="scores")
    graph = helper.make_graph(
        g.nodes,
        "opset11_detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [3, "height", "width"])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1]),
        ],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    onnx.checker.check_model(model, full_check=True)
    return model


def _segment_logits(g: Graph, r: str, gr: str, b: str) -> str:
    """[N, 3, h, w] logits of (background, red, green) from 0..1 channels [N, 1, h, w]."""
    background = g.op("Add", g.op("Mul", r, g.const(0.0)), g.const(LEAD))
    return g.op("Concat", background, g.lead(r, gr, b), g.lead(gr, r, b), axis=1)


def nhwc_segmenter(height: int, width: int) -> onnx.ModelProto:
    """``input`` float [batch, H, W, 3] ((x - 127.5) / 127.5, RGB) -> ``logits`` [batch, H/2, W/2, 3]."""
    g = Graph()
    rgb01 = g.op("Add", g.op("Mul", "input", g.const(0.5)), g.const(0.5))
    nchw = g.op("Transpose", rgb01, perm=[0, 3, 1, 2])
    pooled = g.op("AveragePool", nchw, kernel_shape=[2, 2], strides=[2, 2])
    logits = _segment_logits(g, *g.split3(pooled, axis=1))
    g.op("Transpose", logits, perm=[0, 2, 3, 1], out="logits")
    return g.model(
        "tiny_nhwc_segmenter",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", height, width, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", height // 2, width // 2, 3])],
    )


def classmap_segmenter(height: int, width: int) -> onnx.ModelProto:
    """``pixels`` float [batch, 3, H, W] (pixel / 255 in **BGR** order) -> ``classes`` int64 [batch, H, W]."""
    g = Graph()
    b, gr, r = g.split3("pixels", axis=1)
    g.op("ArgMax", _segment_logits(g, r, gr, b), axis=1, keepdims=0, out="classes")
    return g.model(
        "tiny_classmap_segmenter",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, height, width])],
        [helper.make_tensor_value_info("classes", TensorProto.INT64, ["batch", height, width])],
    )


def tiny_classifier(
    *,
    layout: str = "NCHW",
    batch: int | str = "batch",
    size: tuple[int, int] = (32, 32),
    classes: int = 3,
    dtype: int = TensorProto.FLOAT,
    batch_one_only: bool = False,
    output: str = "scores",
) -> onnx.ModelProto:
    """Mean colour -> ``classes`` scores (``output`` [batch, classes]); ``batch_one_only`` reshapes to
    [1, classes] (as TFLite conversions do), so the graph runs with a batch of 1 only."""
    g = Graph()
    pixels = g.op("Cast", "image", to=TensorProto.FLOAT)
    nchw = g.op("Transpose", pixels, perm=[0, 3, 1, 2]) if layout == "NHWC" else pixels
    pooled = g.op("Flatten", g.op("GlobalAveragePool", nchw), axis=1)  # [N, 3]
    weights = np.arange(3 * classes, dtype=np.float32).reshape(3, classes) / (3 * classes)
    scores = g.op("MatMul", pooled, g.const(weights))
    shape = [1, classes] if batch_one_only else [-1, classes]
    g.op("Reshape", scores, g.const(shape, np.int64), out=output)
    dims = [batch, 3, *size] if layout == "NCHW" else [batch, *size, 3]
    return g.model(
        "tiny_classifier",
        [helper.make_tensor_value_info("image", dtype, dims)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, classes])],
    )


# ImageNet rows of the pets head: tabby, tiger cat, Egyptian cat, golden retriever, kuvasz.
PETS_ROWS = (281, 282, 285, 207, 222)
PETS_LABELS = ("tabby", "tiger cat", "Egyptian cat", "golden retriever", "kuvasz")


def pets_classifier(mobilenetv2: Path) -> onnx.ModelProto:
    """The real MobileNetV2 whose output is 5 of its 1000 logits (``pets`` [batch, 5])."""
    model = onnx.load(str(mobilenetv2))
    graph = model.graph
    graph.initializer.append(helper.make_tensor("pets_rows", TensorProto.INT64, [5], list(PETS_ROWS)))
    graph.node.append(helper.make_node("Gather", [graph.output[0].name, "pets_rows"], ["pets"], axis=1))
    graph.output.pop()
    graph.output.append(helper.make_tensor_value_info("pets", TensorProto.FLOAT, ["batch_size", 5]))
    return model


# -- specs -------------------------------------------------------------------------------------------
def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def toml_text(data: dict) -> str:
    """TOML for a spec: top-level keys, then one [table] per dict value (a nested dict: [table.sub])."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for table, body in data.items():
        if not isinstance(body, dict):
            continue
        lines += ["", f"[{table}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in body.items() if not isinstance(v, dict)]
        for sub, inner in body.items():
            if isinstance(inner, dict):
                lines += [f"[{table}.{sub}]", *(f"{k} = {_toml_value(v)}" for k, v in inner.items())]
    return "\n".join(lines) + "\n"


def write_case(
    directory: Path,
    name: str,
    task: str,
    model: onnx.ModelProto | Path | bytes,
    labels,
    preprocess: dict,
    postprocess: dict | None = None,
    **top,
) -> Path:
    """``directory``/NAME.onnx (``model``: a graph, a file to refer to, or raw bytes), NAME.txt (``labels``)
    and NAME.toml; the spec's path."""
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(model, Path):
        model_path = model
    else:
        model_path = directory / f"{name}.onnx"
        if isinstance(model, bytes):
            model_path.write_bytes(model)
        else:
            onnx.save(model, str(model_path))
    (directory / f"{name}.txt").write_text("".join(f"{label}\n" for label in labels))
    data = {"name": name, "task": task, "model": str(model_path), "labels": f"{name}.txt", **top}
    data["preprocess"] = preprocess
    if postprocess:
        data["postprocess"] = postprocess
    path = directory / f"{name}.toml"
    path.write_text(toml_text(data))
    return path


# One ensemble of each format: name -> (task, model, labels, preprocess, postprocess).
FORMAT_SPECS: dict[str, tuple[Any, ...]] = {
    "yolo": (
        "detection",
        lambda: yolo_detector(64, 96),
        ("red", "blue"),
        {"resize": "letterbox", "size": [64, 96], "pad": "center", "fill": 114},
        {"format": "yolo", "score_threshold": 0.25},
    ),
    "tfod": (
        "detection",
        lambda: tfod_detector(48, 80),
        DET_LABELS,
        {"resize": "stretch", "size": [48, 80], "layout": "NHWC", "dtype": "uint8"},
        {"format": "tf-od", "label_offset": 1},
    ),
    "tv": (
        "detection",
        torchvision_unbatched_detector,
        DET_LABELS,
        {"resize": "keep-aspect", "min_size": 96, "max_size": 160, "antialias": False}
        | {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        {"format": "torchvision"},
    ),
    "segnhwc": (
        "segmentation",
        lambda: nhwc_segmenter(64, 64),
        SEG_LABELS,
        {
            "resize": "shorter-crop",
            "shorter": 80,
            "size": [64, 64],
            "layout": "NHWC",
            "mean": [0.5] * 3,
            "std": [0.5] * 3,
        },
        {"format": "logits-nhwc"},
    ),
    "segmap": (
        "segmentation",
        lambda: classmap_segmenter(48, 64),
        SEG_LABELS,
        {"resize": "letterbox", "size": [48, 64], "pad": "center", "fill": 0, "channels": "BGR"},
        {"format": "class-map"},
    ),
}


def write_format_spec(directory: Path, name: str, **top) -> Path:
    """The spec (and model, labels) of :data:`FORMAT_SPECS` ``name`` in ``directory``."""
    task, model, labels, preprocess, postprocess = FORMAT_SPECS[name]
    return write_case(directory, name, task, model(), labels, preprocess, postprocess, **top)


PETS_PREPROCESS = {
    "resize": "shorter-crop",
    "size": [224, 224],
    "shorter": 256,
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
}
MOBILENET_V1_PREPROCESS = {
    "resize": "stretch",
    "size": [224, 224],
    "layout": "NHWC",
    "mean": [0.5] * 3,
    "std": [0.5] * 3,
}


def write_pets_spec(directory: Path, shared: Path) -> Path:
    """``pets``: the real MobileNetV2 of ``shared``/models with the 5-class head, torchvision's preprocessing."""
    model = pets_classifier(shared / "models" / "mobilenetv2-12-int8.onnx")
    return write_case(directory, "pets", "classification", model, PETS_LABELS, PETS_PREPROCESS, {"output": "logits"})


def write_mobilenet_v1_spec(directory: Path, shared: Path) -> Path:
    """``mobilenet_v1``: the TFLite MobileNet v1 of ``shared``/models (NHWC, fixed batch 1, probabilities)."""
    labels = (shared / "labels" / "imagenet_1001_with_background.txt").read_text().splitlines()
    model = shared / "models" / "mobilenet_v1_0.25_224.onnx"
    return write_case(
        directory, "mobilenet_v1", "classification", model, labels, MOBILENET_V1_PREPROCESS, {"output": "probabilities"}
    )


# -- images ------------------------------------------------------------------------------------------
def blocks_image(height: int, width: int, blocks) -> np.ndarray:
    """RGB uint8: gray with a faint horizontal ramp, then each (colour, (x1, y1, x2, y2)) block (x2/y2 exclusive)."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = np.clip(np.asarray(GRAY) + np.linspace(-10, 10, width)[:, None], 0, 255).astype(np.uint8)[None]
    for colour, (x1, y1, x2, y2) in blocks:
        image[y1:y2, x1:x2] = colour
    return image


def encode(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()
