"""FCN-ResNet50 files with the ONNX model zoo's ``fcn-resnet50-11`` tensor signature, made offline.

- input ``input`` FP32 [N, 3, H, W] (RGB, ImageNet mean/std), H and W dynamic;
- outputs ``out`` and ``aux`` FP32 [N, 21, H, W] (Pascal VOC logits at the input's size).

``torchvision_fcn`` exports torchvision's ``fcn_resnet50`` (random weights, seeded, unless a
local state dict is given: torch/torchvision are imported lazily, the export extra only).
``tiny_fcn`` builds a small graph with the same tensor signature and no torch, for environments without
the export extra. Both random-weight files are marked as stand-ins.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from triton_vision_authoring import standins
from triton_vision_authoring.torch_tools import require_torch
from triton_vision_models import tensors as t

OPSET = 17
EXPORT_SIZE = (128, 160)  # the traced example; H and W stay dynamic in the file


def torchvision_fcn(state_dict_path: Path | None = None, *, seed: int = 0) -> onnx.ModelProto:
    """torchvision's FCN-ResNet50 with its auxiliary head, exported at opset 17."""
    torch: Any = require_torch("exporting FCN-ResNet50")
    from torchvision.models.segmentation import fcn_resnet50

    torch.manual_seed(seed)
    model = fcn_resnet50(weights=None, weights_backbone=None, aux_loss=True, num_classes=t.VOC_CLASSES)
    if state_dict_path is not None:
        model.load_state_dict(torch.load(str(state_dict_path), map_location="cpu", weights_only=True))
    model.eval()

    class Outputs(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            result = self.inner(x)
            return result["out"], result["aux"]

    spatial = {0: "N", 2: "H", 3: "W"}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "fcn.onnx"
        torch.onnx.export(
            Outputs(model),
            (torch.zeros(1, 3, *EXPORT_SIZE),),
            str(path),
            input_names=[t.SEGMENTER_INPUT],
            output_names=[t.SEGMENTER_OUTPUT, t.SEGMENTER_AUX],
            dynamic_axes={t.SEGMENTER_INPUT: spatial, t.SEGMENTER_OUTPUT: spatial, t.SEGMENTER_AUX: spatial},
            opset_version=OPSET,
            dynamo=False,
        )
        exported = onnx.load(str(path))
    return standins.mark_stand_in(exported) if state_dict_path is None else exported


def tiny_fcn(*, seed: int = 0) -> onnx.ModelProto:
    """Two stride-2 convolutions, 1x1 class heads, bilinear upsampling back to the input's size."""
    g = standins._GraphBuilder(seed)
    x = g.conv(t.SEGMENTER_INPUT, 3, 16, 3, 2, relu=True)
    x = g.conv(x, 16, 32, 3, 2, relu=True)
    # Resize "sizes": [N, 21, H, W] with N, H, W from the input's shape.
    g.nodes += [
        helper.make_node("Shape", [t.SEGMENTER_INPUT], ["input_shape"]),
        helper.make_node("Slice", ["input_shape", "zero", "one"], ["input_n"]),
        helper.make_node("Slice", ["input_shape", "two", "four"], ["input_hw"]),
        helper.make_node("Concat", ["input_n", "classes", "input_hw"], ["out_size"], axis=0),
    ]
    for name in (t.SEGMENTER_OUTPUT, t.SEGMENTER_AUX):
        head = g.conv(x, 32, t.VOC_CLASSES, 1, 1, relu=False)
        g.nodes.append(helper.make_node("Resize", [head, "", "", "out_size"], [name], mode="linear"))
    constants = [
        onnx.numpy_helper.from_array(np.array([v], dtype=np.int64), n)
        for n, v in (("zero", 0), ("one", 1), ("two", 2), ("four", 4), ("classes", t.VOC_CLASSES))
    ]
    graph = helper.make_graph(
        g.nodes,
        "fcn_stand_in",
        [helper.make_tensor_value_info(t.SEGMENTER_INPUT, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", t.VOC_CLASSES, "H", "W"])
            for name in (t.SEGMENTER_OUTPUT, t.SEGMENTER_AUX)
        ],
        initializer=g.initializers + constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return standins.mark_stand_in(model, standins.SMALL_GRAPH)
