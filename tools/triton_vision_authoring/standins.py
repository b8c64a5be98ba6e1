"""Stand-in ONNX models: the real architecture and tensor signature, random weights.

They are NOT pretrained: their answers are meaningless, their timings are not. Every stand-in
carries ``metadata_props`` ``triton_vision.stand_in = "true"`` so tools can say so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STAND_IN_KEY = "triton_vision.stand_in"
OPSET = 17
# IR version 8 is what opset 17 needs; newer onnx packages write newer IR versions that older
# ONNX Runtime builds (e.g. the one in Triton 24.10) refuse to load.
IR_VERSION = 8


class _GraphBuilder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def weight(self, prefix: str, array: np.ndarray) -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(self, x: str, c_in: int, c_out: int, kernel: int, stride: int, relu: bool) -> str:
        fan_in = c_in * kernel * kernel
        w = self.rng.normal(0.0, np.sqrt(2.0 / fan_in), (c_out, c_in, kernel, kernel))
        b = np.zeros(c_out)
        out = self.name("conv")
        pad = kernel // 2
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self.weight("w", w), self.weight("b", b)],
                [out],
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
            )
        )
        return self.relu(out) if relu else out

    def relu(self, x: str) -> str:
        out = self.name("relu")
        self.nodes.append(helper.make_node("Relu", [x], [out]))
        return out

    def add(self, a: str, b: str) -> str:
        out = self.name("add")
        self.nodes.append(helper.make_node("Add", [a, b], [out]))
        return out

    def basic_block(self, x: str, c_in: int, c_out: int, stride: int) -> str:
        y = self.conv(x, c_in, c_out, 3, stride, relu=True)
        y = self.conv(y, c_out, c_out, 3, 1, relu=False)
        shortcut = x if (stride == 1 and c_in == c_out) else self.conv(x, c_in, c_out, 1, stride, relu=False)
        return self.relu(self.add(y, shortcut))


def resnet18_model(input_name: str, output_name: str, *, num_classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """ResNet-18 (v1.5: stride on the 3x3 conv) with batch-norm folded into conv biases."""
    g = _GraphBuilder(seed)
    x = g.conv(input_name, 3, 64, 7, 2, relu=True)
    pooled = g.name("pool")
    g.nodes.append(helper.make_node("MaxPool", [x], [pooled], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, channels = pooled, 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        x = g.basic_block(x, channels, width, stride)
        x = g.basic_block(x, width, width, 1)
        channels = width
    gap, flat = g.name("gap"), g.name("flatten")
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], [gap]))
    g.nodes.append(helper.make_node("Flatten", [gap], [flat], axis=1))
    fc_w = g.rng.normal(0.0, np.sqrt(1.0 / channels), (num_classes, channels))
    g.nodes.append(
        helper.make_node(
            "Gemm", [flat, g.weight("fc_w", fc_w), g.weight("fc_b", np.zeros(num_classes))], [output_name], transB=1
        )
    )
    graph = helper.make_graph(
        g.nodes,
        "resnet18_stand_in",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", num_classes])],
        initializer=g.initializers,
    )
    return mark_stand_in(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]))


REAL_ARCHITECTURE = "real architecture and tensor signature"
SMALL_GRAPH = "a small graph with the tensor signature only, NOT the real architecture"


def mark_stand_in(model: onnx.ModelProto, what: str = REAL_ARCHITECTURE) -> onnx.ModelProto:
    model.doc_string = f"triton-vision stand-in: {what}, RANDOM weights (not pretrained)"
    entry = model.metadata_props.add()
    entry.key, entry.value = STAND_IN_KEY, "true"
    model.producer_name = "triton-vision"
    model.ir_version = min(model.ir_version, IR_VERSION)
    onnx.checker.check_model(model)
    return model


def is_stand_in(path: Path) -> bool:
    model = onnx.load(str(path), load_external_data=False)
    return any(p.key == STAND_IN_KEY and p.value == "true" for p in model.metadata_props)


def small_detector(
    images: str,
    image_sizes: str,
    outputs: tuple[str, str, str, str],
    *,
    classes: int = 91,
    seed: int = 0,
) -> onnx.ModelProto:
    """A small graph with Faster R-CNN's tensor signature (no torch needed): per image one box, the
    whole image (``image_sizes``), with a score in (0.5, 1) (above the default threshold, so the
    demo draws it) and a class id (1..classes-1) from random projections of its mean colour.
    Meaningless answers of the right shapes and types.

    As the exported Faster R-CNN, it loops over the batch and reads each image cropped to its
    ``image_sizes``: the padding to the batch's largest image, which the batch-mates decide, never
    reaches an answer (the same bytes answer the same alone or in any batch)."""
    boxes, scores, labels, count = outputs
    rng = np.random.default_rng(seed)
    const = numpy_helper.from_array
    initializers = [
        const(np.array([1], np.int64), "axis1"),
        const(np.array([0], np.int64), "col0"),
        const(np.array([1], np.int64), "col1"),
        const(rng.normal(0.0, 4.0, (3, 1)).astype(np.float32), "score_w"),
        const(rng.normal(0.0, 1.0, (3, classes - 1)).astype(np.float32), "class_w"),
        const(np.array([[1]], np.int64), "one_count"),
        const(np.array(1, np.int64), "first_class"),
        const(np.array(0.5, np.float32), "half"),
        const(np.array(0, np.int64), "index0"),
    ]
    nodes = [
        helper.make_node("Shape", [images], ["images_shape"]),
        helper.make_node("Gather", ["images_shape", "index0"], ["batch_size"], axis=0),  # a scalar: the trip count
        helper.make_node("Loop", ["batch_size", ""], ["rgb"], body=_mean_colour_body(images, image_sizes)),  # [B, 3]
        helper.make_node("MatMul", ["rgb", "score_w"], ["logit"]),  # [B, 1]
        helper.make_node("Sigmoid", ["logit"], ["unit"]),
        helper.make_node("Mul", ["unit", "half"], ["half_unit"]),
        helper.make_node("Add", ["half_unit", "half"], [scores]),  # in (0.5, 1): shown at the default threshold
        helper.make_node("MatMul", ["rgb", "class_w"], ["class_logits"]),  # [B, classes - 1]
        helper.make_node("ArgMax", ["class_logits"], ["class_index"], axis=1, keepdims=1),  # [B, 1]
        helper.make_node("Add", ["class_index", "first_class"], [labels]),
        helper.make_node("Cast", [image_sizes], ["sizes"], to=TensorProto.FLOAT),  # [B, 2] = (h, w)
        helper.make_node("Gather", ["sizes", "col0"], ["height"], axis=1),  # [B, 1]
        helper.make_node("Gather", ["sizes", "col1"], ["width"], axis=1),
        helper.make_node("Sub", ["height", "height"], ["zeros"]),
        helper.make_node("Concat", ["zeros", "zeros", "width", "height"], ["box"], axis=1),  # [B, 4]
        helper.make_node("Unsqueeze", ["box", "axis1"], [boxes]),  # [B, 1, 4]
        helper.make_node("Shape", [image_sizes], ["sizes_shape"]),
        helper.make_node("Slice", ["sizes_shape", "col0", "col1"], ["batch"]),
        helper.make_node("Concat", ["batch", "axis1"], ["count_shape"], axis=0),
        helper.make_node("Expand", ["one_count", "count_shape"], [count]),  # [B, 1]
    ]
    graph = helper.make_graph(
        nodes,
        "small_detector_stand_in",
        [
            helper.make_tensor_value_info(images, TensorProto.FLOAT, ["batch", 3, "height", "width"]),
            helper.make_tensor_value_info(image_sizes, TensorProto.INT64, ["batch", 2]),
        ],
        [
            helper.make_tensor_value_info(boxes, TensorProto.FLOAT, ["batch", "detections", 4]),
            helper.make_tensor_value_info(scores, TensorProto.FLOAT, ["batch", "detections"]),
            helper.make_tensor_value_info(labels, TensorProto.INT64, ["batch", "detections"]),
            helper.make_tensor_value_info(count, TensorProto.INT64, ["batch", 1]),
        ],
        initializer=initializers,
    )
    return mark_stand_in(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), SMALL_GRAPH)


def _mean_colour_body(images: str, image_sizes: str) -> onnx.GraphProto:
    """The body of a Loop over the batch: image i cropped to its (height, width), its mean per channel."""
    const = numpy_helper.from_array
    nodes = [
        helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        helper.make_node("Gather", [images, "i"], ["image"], axis=0),  # [3, H, W], padded
        helper.make_node("Gather", [image_sizes, "i"], ["extent"], axis=0),  # [2]: its (height, width)
        helper.make_node("Slice", ["image", "origin", "extent", "spatial"], ["own"]),  # [3, height, width]
        helper.make_node("ReduceMean", ["own"], ["mean"], axes=[1, 2], keepdims=0),  # [3]
    ]
    return helper.make_graph(
        nodes,
        "mean_colour",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("mean", TensorProto.FLOAT, [3]),
        ],
        initializer=[const(np.array([0, 0], np.int64), "origin"), const(np.array([1, 2], np.int64), "spatial")],
    )


def small_unbatched_detector(
    image: str,
    outputs: tuple[str, str, str],
    *,
    classes: int = 81,
    seed: int = 0,
) -> onnx.ModelProto:
    """A small graph with the ONNX model zoo Faster R-CNN's tensor signature (no batch dimension, no torch
    needed): ``image`` FP32 [3, H, W] (BGR, 0..255 minus the mean) -> ``outputs`` boxes FP32 [1, 4] (the whole
    input, padding included: the post-processing clips it to the image), labels INT64 [1] (1..classes-1)
    and scores FP32 [1] (in (0.5, 1): above the default threshold, so the demo draws it), from random
    projections of the input's mean colour. Meaningless answers of the right shapes and types."""
    boxes, labels, scores = outputs
    rng = np.random.default_rng(seed)
    const = numpy_helper.from_array
    initializers = [
        const(np.array([0], np.int64), "axis0"),
        const(np.array([2, 1], np.int64), "width_height"),
        const(np.zeros(2, np.float32), "top_left"),
        # Inputs are pixel values minus the mean (tens): weights a 64th of the small detector's keep the
        # sigmoid off its flat ends.
        const((rng.normal(0.0, 4.0, (3, 1)) / 64).astype(np.float32), "score_w"),
        const(rng.normal(0.0, 1.0, (3, classes - 1)).astype(np.float32), "class_w"),
        const(np.array([1], np.int64), "score_shape"),
        const(np.array(1, np.int64), "first_class"),
        const(np.array(0.5, np.float32), "half"),
    ]
    nodes = [
        helper.make_node("ReduceMean", [image], ["bgr"], axes=[1, 2], keepdims=0),  # [3]
        helper.make_node("Unsqueeze", ["bgr", "axis0"], ["bgr_row"]),  # [1, 3]
        helper.make_node("MatMul", ["bgr_row", "score_w"], ["logit"]),  # [1, 1]
        helper.make_node("Sigmoid", ["logit"], ["unit"]),
        helper.make_node("Mul", ["unit", "half"], ["half_unit"]),
        helper.make_node("Add", ["half_unit", "half"], ["score"]),  # in (0.5, 1)
        helper.make_node("Reshape", ["score", "score_shape"], [scores]),  # [1]
        helper.make_node("MatMul", ["bgr_row", "class_w"], ["class_logits"]),  # [1, classes - 1]
        helper.make_node("ArgMax", ["class_logits"], ["class_index"], axis=1, keepdims=0),  # [1]
        helper.make_node("Add", ["class_index", "first_class"], [labels]),
        helper.make_node("Shape", [image], ["shape"]),  # (3, H, W)
        helper.make_node("Gather", ["shape", "width_height"], ["size"], axis=0),  # (W, H)
        helper.make_node("Cast", ["size"], ["size_f"], to=TensorProto.FLOAT),
        helper.make_node("Concat", ["top_left", "size_f"], ["box"], axis=0),  # [4]
        helper.make_node("Unsqueeze", ["box", "axis0"], [boxes]),  # [1, 4]
    ]
    graph = helper.make_graph(
        nodes,
        "small_unbatched_detector_stand_in",
        [helper.make_tensor_value_info(image, TensorProto.FLOAT, [3, "height", "width"])],
        [
            helper.make_tensor_value_info(boxes, TensorProto.FLOAT, ["nbox", 4]),
            helper.make_tensor_value_info(labels, TensorProto.INT64, ["nbox"]),
            helper.make_tensor_value_info(scores, TensorProto.FLOAT, ["nbox"]),
        ],
        initializer=initializers,
    )
    return mark_stand_in(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), SMALL_GRAPH)
