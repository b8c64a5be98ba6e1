"""Tiny ONNX graphs with the published tensor contracts of instance-segmentation exports (constant answers
added to 0 x the input, so they run on any image): Ultralytics' segment head (``output0`` [B, 4 + C + M, N],
``output1`` [B, M, h, w])."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def constant_outputs_model(name: str, size: tuple[int, int], outputs: dict[str, np.ndarray]) -> onnx.ModelProto:
    """``images`` float [batch, 3, H, W] -> each of ``outputs`` (a per-image array), tiled over the batch."""
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
        nodes += [
            helper.make_node("Unsqueeze", ["zeros", axes], [f"shaped{index}"]),  # [batch, 1, ...]
            helper.make_node("Add", [f"shaped{index}", const], [out]),
        ]
        dims: list[str | int] = ["batch", *(int(d) for d in value.shape)]
        infos.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, dims))
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
