"""Embedding models with the published tensor contracts, and the specs that serve them.

- :func:`resnet_embedder`: torchvision's ResNet-18 (seeded random weights) without its classifier: the
  global average pool's output [B, 512, 1, 1], as an image-search backbone gives it (the export extra);
- :func:`token_embedder`: a ViT-style token output [B, 1 + T, D] built with ``onnx.helper``: a 16x16
  patch embedding (a strided convolution, T = 16 patches of a 64x64 input) after a class token that
  summarises the image, as ViT/CLIP/DINO image towers answer before pooling.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.support.format_models import toml_text

TOKEN_SIZE = 64  # the token embedder's input side
TOKEN_DIM = 48
PATCH = 16

RESNET_SPEC: dict[str, Any] = {
    "name": "resnet_embed",
    "task": "embedding",
    "model": "resnet_embed.onnx",
    "preprocess": {
        "resize": "shorter-crop",
        "size": [224, 224],
        "shorter": 256,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    },
}
TOKEN_SPEC: dict[str, Any] = {
    "name": "token_embed",
    "task": "embedding",
    "model": "token_embed.onnx",
    "max_batch_size": 4,
    "preprocess": {"resize": "stretch", "size": [TOKEN_SIZE, TOKEN_SIZE], "mean": [0.5] * 3, "std": [0.5] * 3},
    "postprocess": {"pooling": "mean", "normalize": False},
}


def resnet_embedder(seed: int = 0) -> onnx.ModelProto:
    """ResNet-18 up to its global average pool: input ``images`` [B, 3, 224, 224], output ``features``
    [B, 512, 1, 1]."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    backbone = torch.nn.Sequential(*list(torchvision.models.resnet18(weights=None).children())[:-1]).eval()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "resnet_embed.onnx"
        torch.onnx.export(
            backbone,
            (torch.zeros(1, 3, 224, 224),),
            str(path),
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "N"}, "features": {0: "N"}},
            opset_version=17,
            dynamo=False,
        )
        return onnx.load(str(path))


def token_embedder(seed: int = 0) -> onnx.ModelProto:
    """Input ``pixel_values`` [B, 3, 64, 64]; output ``last_hidden_state`` [B, 17, 48]: token 0 is
    tanh(W_cls . mean colour of the image), tokens 1..16 tanh(patch embedding) of the 4x4 patches."""
    rng = np.random.default_rng(seed)
    patches = (TOKEN_SIZE // PATCH) ** 2
    init = [
        numpy_helper.from_array(rng.normal(0, 0.05, (TOKEN_DIM, 3, PATCH, PATCH)).astype(np.float32), "patch_w"),
        numpy_helper.from_array(rng.normal(0, 0.1, TOKEN_DIM).astype(np.float32), "patch_b"),
        numpy_helper.from_array(rng.normal(0, 1.0, (3, TOKEN_DIM)).astype(np.float32), "cls_w"),
        numpy_helper.from_array(np.array([0, TOKEN_DIM, patches], np.int64), "tokens_shape"),
        numpy_helper.from_array(np.array([0, 1, 3], np.int64), "cls_shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["pixel_values", "patch_w", "patch_b"], ["grid"], strides=[PATCH, PATCH]),
        helper.make_node("Reshape", ["grid", "tokens_shape"], ["flat"]),  # [B, D, T]
        helper.make_node("Transpose", ["flat"], ["tokens"], perm=[0, 2, 1]),  # [B, T, D]
        helper.make_node("ReduceMean", ["pixel_values"], ["colour"], axes=[2, 3], keepdims=0),  # [B, 3]
        helper.make_node("Reshape", ["colour", "cls_shape"], ["colour3"]),  # [B, 1, 3]
        helper.make_node("MatMul", ["colour3", "cls_w"], ["cls"]),  # [B, 1, D]
        helper.make_node("Concat", ["cls", "tokens"], ["joined"], axis=1),
        helper.make_node("Tanh", ["joined"], ["last_hidden_state"]),
    ]
    graph = helper.make_graph(
        nodes,
        "token_embedder",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["N", 3, TOKEN_SIZE, TOKEN_SIZE])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["N", patches + 1, TOKEN_DIM])],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def write_embedders(folder: Path, *, resnet: bool = True) -> list[Path]:
    """The specs (and model files) of the token embedder and, with ``resnet``, the ResNet one, in ``folder``."""
    onnx.save(token_embedder(), str(folder / TOKEN_SPEC["model"]))
    (folder / "token_embed.toml").write_text(toml_text(TOKEN_SPEC))
    specs = [folder / "token_embed.toml"]
    if resnet:
        onnx.save(resnet_embedder(), str(folder / RESNET_SPEC["model"]))
        (folder / "resnet_embed.toml").write_text(toml_text(RESNET_SPEC))
        specs.append(folder / "resnet_embed.toml")
    return specs
