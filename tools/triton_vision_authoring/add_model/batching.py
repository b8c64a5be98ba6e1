"""A model file's batch dimension, rewritten as Triton's ONNX Runtime backend needs it: free.

:func:`free_batch_dimension` declares a fixed batch of 1 free (usual for TensorFlow/TFLite
conversions; :func:`.onnx_model.runs_with_batch` then tells whether the graph batches);
:func:`add_batch_dimension` gives a file without one (a torchvision single-image export) a leading
batch of 1 (a ``Squeeze`` in, an ``Unsqueeze`` out).
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from triton_vision_authoring.add_model.ensemble_spec import SpecError

BATCH_DIM = "batch"
# How a model's batch dimension was found: kept free, made free (batches / only 1), or added.
BATCH_FREE = "free batch dimension"
BATCH_MADE_FREE = "fixed batch of 1 made free (batches)"
BATCH_ONE = "fixed batch of 1 (the graph does not batch): max_batch_size 1"
BATCH_ADDED = "no batch dimension (one was added): max_batch_size 1"
# What add-model did to a file, kept in the served file's metadata: regenerating from the kept
# NAME/spec.toml (whose model is the served file, its batch dimension already free) decides the same.


def _set_first_dim(value: onnx.ValueInfoProto, name: str) -> None:
    dim = value.type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_param = name


def free_batch_dimension(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its inputs' and outputs' first dimension (a fixed 1) declared free."""
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    initialisers = {init.name for init in rewritten.graph.initializer}
    for value in [*rewritten.graph.input, *rewritten.graph.output]:
        if value.name in initialisers or not value.type.tensor_type.shape.dim:
            continue
        _set_first_dim(value, BATCH_DIM)
    return rewritten


def _rename_uses(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every node input named ``old`` reads ``new`` instead, in subgraphs too (outer-scope names)."""
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                _rename_uses(subgraph, old, new)


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def add_batch_dimension(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with a leading batch dimension of 1 on every input and output (Squeeze in, Unsqueeze out).

    Squeeze/Unsqueeze take their axes as an input from opset 13 on, as an attribute before (torchvision's
    detection exports are often opset 11). A constant output (an initialiser) is renamed like a node's, and
    so is a shape the file records for an output (``value_info``: it describes the unbatched tensor)."""
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    graph = rewritten.graph
    initialisers = {init.name for init in graph.initializer}
    axes = helper.make_tensor("triton_vision_axis0", TensorProto.INT64, [1], [0])
    by_input = _opset(model) >= 13

    def reshaped(op: str, source: str, target: str) -> onnx.NodeProto:
        if by_input:
            return helper.make_node(op, [source, axes.name], [target])
        return helper.make_node(op, [source], [target], axes=[0])

    head, tail = [], []
    for value in graph.input:
        if value.name in initialisers:
            continue
        inner = f"{value.name}__unbatched"
        _rename_uses(graph, value.name, inner)
        head.append(reshaped("Squeeze", value.name, inner))
        value.type.tensor_type.shape.dim.insert(0, onnx.TensorShapeProto.Dimension(dim_param=BATCH_DIM))
    produced = {name for node in graph.node for name in node.output}
    for value in graph.output:
        inner = f"{value.name}__unbatched"
        _rename_uses(graph, value.name, inner)
        if value.name in produced:
            for node in graph.node:
                node.output[:] = [inner if n == value.name else n for n in node.output]
        elif value.name in initialisers:  # a constant output: the initialiser takes the inner name
            next(init for init in graph.initializer if init.name == value.name).name = inner
        else:
            raise SpecError(f"output '{value.name}' is the input of that name passed through: no batch can be added")
        for info in graph.value_info:
            if info.name == value.name:
                info.name = inner
        tail.append(reshaped("Unsqueeze", inner, value.name))
        value.type.tensor_type.shape.dim.insert(0, onnx.TensorShapeProto.Dimension(dim_param=BATCH_DIM))
    nodes = [*head, *graph.node, *tail]
    del graph.node[:]
    graph.node.extend(nodes)
    if by_input:
        graph.initializer.append(axes)
    onnx.checker.check_model(rewritten)
    return rewritten
