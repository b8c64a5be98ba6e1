"""A user's ONNX file against its spec: which tensor is which, whether it batches, and the checks.

Reads the file's own tensors (names, dtypes, shapes), finds the image input (and an
``image_sizes`` input for torchvision-style detectors) and the outputs each post-processing
format reads, and refuses, naming both sides, where the spec and the file disagree: the size vs
the input's dimensions, the layout vs the channel axis, the dtype, the class count vs the label
lines, a missing output.

Batching. Triton's ONNX Runtime backend batches a model whose tensors' first dimension is free.
A file with a fixed batch of 1 (usual for TensorFlow/TFLite conversions) gets that dimension made
free; it is then tried in-process with a batch of 2: where the graph allows it the model batches,
otherwise it is served with ``max_batch_size`` 1. A file without a batch dimension (a
torchvision single-image export) gets one added (an ``Unsqueeze``/``Squeeze`` around the graph)
and is served with ``max_batch_size`` 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

import triton_vision_contract as contract
from triton_vision_authoring.add_model.batching import (
    BATCH_ADDED,
    BATCH_FREE,
    BATCH_MADE_FREE,
    BATCH_ONE,
    add_batch_dimension,
    free_batch_dimension,
)
from triton_vision_authoring.add_model.detection_outputs import check_keypointrcnn, check_yolo, file_keypoint_shape
from triton_vision_authoring.add_model.ensemble_spec import (
    DEFAULT_MAX_BATCH,
    DETECTION_TASKS,
    DTYPES,
    OPTIONAL_ROLES,
    ROLES,
    EnsembleSpec,
    SpecError,
)
from triton_vision_models import detection, geometry

ONNX_TO_TRITON: dict[int, str] = {
    TensorProto.FLOAT: "TYPE_FP32",
    TensorProto.FLOAT16: "TYPE_FP16",
    TensorProto.DOUBLE: "TYPE_FP64",
    TensorProto.UINT8: "TYPE_UINT8",
    TensorProto.INT8: "TYPE_INT8",
    TensorProto.INT16: "TYPE_INT16",
    TensorProto.INT32: "TYPE_INT32",
    TensorProto.INT64: "TYPE_INT64",
    TensorProto.BOOL: "TYPE_BOOL",
}
DTYPE_NAMES = {"float32": "TYPE_FP32", "uint8": "TYPE_UINT8", "int64": "TYPE_INT64", "int32": "TYPE_INT32"}
INTEGER_TYPES = ("TYPE_INT64", "TYPE_INT32", "TYPE_UINT8", "TYPE_INT16", "TYPE_INT8")
BATCHING_KEY = "triton_vision.batching"
SOURCE_KEY = "triton_vision.source"


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # Triton's TYPE_*
    shape: tuple[int, ...]  # full shape as the file declares it; -1 free

    @property
    def dims(self) -> tuple[int, ...]:
        """Without the batch dimension (the config's ``dims``)."""
        return self.shape[1:]


@dataclass
class ModelSignature:
    """The model's tensors as served (batch dimension first), and how they are wired."""

    inputs: list[Tensor]
    outputs: list[Tensor]
    max_batch_size: int  # the most images per execution the model takes (>= 1)
    batching: str = BATCH_FREE
    image_input: str = ""
    image_sizes_input: str | None = None
    roles: dict[str, str] = field(default_factory=dict)  # post-processing role -> output name
    source_name: str = ""  # the file the user gave (its name), where the model came from one
    num_classes: int | None = None  # from the output shape, where it tells
    embedding_dim: int | None = None  # embedding: D, where the output's shape tells
    file_keypoint_shape: tuple[int, int] | None = None  # the file's own word (Ultralytics' kpt_shape metadata)
    keypoint_shape: tuple[int, int] | None = None  # keypoints: (J, values per keypoint in yolo-pose's rows)
    keypoint_names: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()

    def input(self, name: str) -> Tensor:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> Tensor:
        return next(t for t in self.outputs if t.name == name)


def _shape(value: onnx.ValueInfoProto) -> tuple[int, ...]:
    dims = value.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in dims)


def _tensor(value: onnx.ValueInfoProto, where: str) -> Tensor:
    elem = value.type.tensor_type.elem_type
    if elem not in ONNX_TO_TRITON:
        raise SpecError(
            f"{where}: tensor '{value.name}' has type {TensorProto.DataType.Name(elem)}, which is not served"
        )
    return Tensor(value.name, ONNX_TO_TRITON[elem], _shape(value))


def graph_tensors(model: onnx.ModelProto, where: str) -> tuple[list[Tensor], list[Tensor]]:
    initialisers = {init.name for init in model.graph.initializer}
    inputs = [_tensor(v, where) for v in model.graph.input if v.name not in initialisers]
    outputs = [_tensor(v, where) for v in model.graph.output]
    return inputs, outputs


def load_onnx(path: Path) -> onnx.ModelProto:
    """The ONNX file; :class:`SpecError` for anything else (an image, a truncated file, ...)."""
    if not path.is_file():
        raise SpecError(f"{path}: no such model file")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends: not an ONNX file
        head = path.read_bytes()[:8]
        raise SpecError(f"{path}: not an ONNX model file (starts with {head.hex(' ')}; {type(exc).__name__})") from None


# -- which input takes the pixels -------------------------------------------------------------------
def find_image_input(spec: EnsembleSpec, inputs: Sequence[Tensor], where: str) -> tuple[Tensor, Tensor | None]:
    names = [t.name for t in inputs]
    if spec.image_input is not None:
        image = next((t for t in inputs if t.name == spec.image_input), None)
        if image is None:
            raise SpecError(
                f"{where}: [inputs] image = '{spec.image_input}' is not an input of the file "
                f"(inputs: {', '.join(names)})"
            )
    else:
        shaped = [t for t in inputs if len(t.shape) in (3, 4)]
        if len(shaped) > 1:  # the pixels are float32 or uint8: the other may be a mask, a prior, ...
            shaped = [t for t in shaped if t.dtype in ("TYPE_FP32", "TYPE_UINT8")]
        if len(shaped) != 1:
            raise SpecError(
                f"{where}: cannot tell which input takes the image (inputs: {', '.join(names)}); "
                'name it: [inputs] image = "..."'
            )
        image = shaped[0]
    sizes: Tensor | None = None
    others = [t for t in inputs if t.name != image.name]
    if spec.image_sizes_input is not None:
        sizes = next((t for t in others if t.name == spec.image_sizes_input), None)
        if sizes is None:
            raise SpecError(
                f"{where}: [inputs] image_sizes = '{spec.image_sizes_input}' is not an input of the file "
                f"(inputs: {', '.join(names)})"
            )
    elif len(others) == 1 and spec.task in DETECTION_TASKS and others[0].dtype in ("TYPE_INT64", "TYPE_INT32"):
        sizes = others[0]
    remaining = [t.name for t in others if sizes is None or t.name != sizes.name]
    if remaining:
        raise SpecError(
            f"{where}: input '{remaining[0]}' is neither the image nor image_sizes: the ensemble cannot feed it"
        )
    return image, sizes


def check_image_input(spec: EnsembleSpec, image: Tensor, where: str) -> None:
    """The spec's dtype, layout and size against the image input's declared type and dimensions."""
    pre = spec.preprocess
    wanted = DTYPE_NAMES[pre.dtype]
    if image.dtype != wanted:
        fits = next((name for name, triton in DTYPE_NAMES.items() if triton == image.dtype and name in DTYPES), None)
        hint = f' (dtype = "{fits}"?)' if fits else " (the preprocessing gives float32 or uint8)"
        raise SpecError(
            f"{where}: [preprocess] dtype = \"{pre.dtype}\" but input '{image.name}' is "
            f"{image.dtype.removeprefix('TYPE_')}{hint}"
        )
    dims = image.shape[-3:]
    channel_axis = 0 if pre.layout == "NCHW" else 2
    spatial = (dims[1], dims[2]) if pre.layout == "NCHW" else (dims[0], dims[1])
    other_axis = 2 if pre.layout == "NCHW" else 0
    if dims[channel_axis] not in (3, -1):
        hint = ' (channels last: layout = "NHWC"?)' if dims[other_axis] == 3 and pre.layout == "NCHW" else ""
        hint = hint or (' (channels first: layout = "NCHW"?)' if dims[other_axis] == 3 else "")
        raise SpecError(
            f'{where}: [preprocess] layout = "{pre.layout}" puts the 3 colour channels on axis '
            f"{channel_axis + len(image.shape) - 3}, but input '{image.name}' has shape {list(image.shape)}{hint}"
        )
    rule = pre.rule
    if rule.mode == geometry.KEEP_ASPECT:
        if any(d > 0 for d in spatial):
            raise SpecError(
                f"{where}: [preprocess] resize 'keep-aspect' makes inputs of each image's own size, "
                f"but input '{image.name}' has fixed height and width {list(image.shape)}"
            )
        return
    for axis, (got, want) in enumerate(zip(spatial, rule.network, strict=True)):
        if got > 0 and got != want:
            raise SpecError(
                f"{where}: [preprocess] size = {list(rule.network)} but input '{image.name}' has shape "
                f"{list(image.shape)} ({'height' if axis == 0 else 'width'} {got})"
            )


# -- which outputs the post-processing reads ----------------------------------------------------------
def find_roles(spec: EnsembleSpec, outputs: Sequence[Tensor], where: str) -> dict[str, str]:
    fmt = spec.format
    names = [t.name for t in outputs]
    roles: dict[str, str] = {}
    for role, conventional in ROLES[fmt].items():
        named = spec.postprocess.tensors.get(role)
        if named is not None:
            if named not in names:
                raise SpecError(
                    f"{where}: [postprocess.tensors] {role} = '{named}' is not an output of the file "
                    f"(outputs: {', '.join(names)})"
                )
            roles[role] = named
            continue
        found = next((n for n in conventional if n in names), None)
        if found is None and len(ROLES[fmt]) == 1:
            found = _sole_output(outputs, spec, role, where)
        if found is None:
            if (fmt, role) in OPTIONAL_ROLES:
                continue
            raise SpecError(
                f"{where}: format '{fmt}' reads a '{role}' output "
                f"({' or '.join(repr(n) for n in conventional) or 'no conventional name'}), which the file lacks "
                f'(outputs: {", ".join(names)}); name it: [postprocess.tensors] {role} = "..."'
            )
        roles[role] = found
    return roles


def _sole_output(outputs: Sequence[Tensor], spec: EnsembleSpec, role: str, where: str) -> str:
    if len(outputs) == 1:
        return outputs[0].name
    ranked = [t for t in outputs if len(t.shape) == {"scores": 2, "logits": 4, "classes": 3}.get(role, 0)]
    if len(ranked) == 1:
        return ranked[0].name
    raise SpecError(
        f"{where}: the file has {len(outputs)} outputs ({', '.join(t.name for t in outputs)}); name the one with the "
        f'{role}: [postprocess.tensors] {role} = "..."'
    )


def count_labels(path: Path) -> int:
    if not path.is_file():
        raise SpecError(f"{path}: no such label file")
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def check_outputs(spec: EnsembleSpec, signature: ModelSignature, labels: int, where: str) -> None:
    """Shapes and class counts of the outputs the post-processing reads."""
    fmt = spec.format
    out = {role: signature.output(name) for role, name in signature.roles.items()}

    def refuse(role: str, wanted: str) -> SpecError:
        tensor = out[role]
        return SpecError(
            f"{where}: format '{fmt}' needs output '{tensor.name}' ({role}) as {wanted}, "
            f"the file has {list(tensor.shape)}"
        )

    def classes(count: int, what: str) -> None:
        if count > 0 and count != labels:
            raise SpecError(f"{where}: {what} has {count} classes, the label file {spec.label_name} has {labels} lines")
        signature.num_classes = count if count > 0 else None

    if fmt == contract.CLASSIFICATION:
        scores = out["scores"]
        if len(scores.shape) < 2 or any(d != 1 for d in scores.shape[1:-1]):
            raise refuse("scores", "[batch, classes]")
        classes(scores.shape[-1], f"output '{scores.name}'")
        signature.num_classes = labels
        top_k = spec.postprocess.top_k
        if top_k is not None and top_k > labels:
            raise SpecError(
                f"{where}: [postprocess] top_k = {top_k} but the label file {spec.label_name} has {labels} classes"
            )
    elif fmt in ("torchvision", "tf-od", "torchvision-maskrcnn", "torchvision-keypointrcnn"):
        boxes = out["boxes"]
        if len(boxes.shape) != 3 or boxes.shape[-1] not in (4, -1):
            raise refuse("boxes", "[batch, detections, 4]")
        for role in ("scores", "labels", "classes"):
            if role in out and len(out[role].shape) != 2:
                raise refuse(role, "[batch, detections]")
        if "count" in out and len(out["count"].shape) not in (1, 2):
            raise refuse("count", "[batch] or [batch, 1]")
        if "masks" in out and len(out["masks"].shape) not in (4, 5):
            raise refuse("masks", "[batch, detections, 1, height, width] probabilities")
        if fmt == "torchvision-keypointrcnn":
            check_keypointrcnn(spec, signature, out, where, refuse)
    elif fmt in ("yolo", "yolo-seg", "yolo-pose"):
        check_yolo(spec, signature, out, labels, where, refuse)
    elif fmt in ("logits-nchw", "logits-nhwc"):
        logits = out["logits"]
        if len(logits.shape) != 4:
            raise refuse(
                "logits",
                "[batch, classes, height, width]" if fmt == "logits-nchw" else "[batch, height, width, classes]",
            )
        classes(logits.shape[1] if fmt == "logits-nchw" else logits.shape[3], f"output '{logits.name}'")
    elif fmt == "class-map":
        class_map = out["classes"]
        if len(class_map.shape) not in (3, 4) or class_map.dtype not in INTEGER_TYPES + ("TYPE_FP32",):
            raise refuse("classes", "[batch, height, width] class ids")
        signature.num_classes = labels
    elif fmt in ("yolov5", "yolox"):
        predictions = out["predictions"]
        if len(predictions.shape) != 3:
            raise refuse("predictions", "[batch, candidates, 5 + classes]")
        if predictions.shape[2] > 0:
            count = predictions.shape[2] - 5
            if count < 1 or count + spec.postprocess.label_offset > labels:
                raise SpecError(
                    f"{where}: output '{predictions.name}' has {predictions.shape[2]} columns (4 box + objectness + "
                    f"{count} classes), the label file {spec.label_name} has {labels} lines "
                    f"(label_offset {spec.postprocess.label_offset})"
                )
            signature.num_classes = count
        if fmt == "yolox" and predictions.shape[1] > 0 and spec.preprocess.rule.size is not None:
            cells = detection.yolox_grid(spec.preprocess.rule.network)[0].shape[0]
            if predictions.shape[1] != cells:
                height, width = spec.preprocess.rule.network
                raise SpecError(
                    f"{where}: [preprocess] size = [{height}, {width}] has {cells} cells in YOLOX's stride 8/16/32 "
                    f"grids, but output '{predictions.name}' has {predictions.shape[1]} rows (shape "
                    f"{list(predictions.shape)}; another input size, or an export that decodes itself?)"
                )
    elif fmt == contract.EMBEDDING:
        signature.embedding_dim = _embedding_dim(spec, out["embedding"], where)
    if spec.task == contract.SEGMENTATION and labels > 255:
        raise SpecError(f"{where}: {labels} classes do not fit a UINT8 mask (at most 255; 255 marks void pixels)")


def _embedding_dim(spec: EnsembleSpec, output: Tensor, where: str) -> int | None:
    """D of an embedding output ([batch, D], [batch, D, 1, 1], or tokens [batch, T, D] with a pooling);
    None where the file leaves it free."""
    pooling = spec.postprocess.pooling
    shape = list(output.shape)
    if pooling != "none":
        if len(shape) != 3:
            raise SpecError(
                f'{where}: [postprocess] pooling = "{pooling}" reads tokens [batch, tokens, dim], but output '
                f"'{output.name}' has shape {shape}"
            )
        return shape[2] if shape[2] > 0 else None
    if len(shape) == 2 or (len(shape) == 4 and all(d in (1, -1) for d in shape[2:])):
        return shape[1] if shape[1] > 0 else None
    hint = ' (tokens: pooling = "cls" or "mean"?)' if len(shape) == 3 else ""
    raise SpecError(
        f"{where}: an embedding is read from an output [batch, dim] or [batch, dim, 1, 1], but output "
        f"'{output.name}' has shape {shape}{hint}"
    )


# -- batching -------------------------------------------------------------------------------------
def runs_with_batch(
    model: onnx.ModelProto, image: Tensor, spec: EnsembleSpec, batch: int, extra: Tensor | None
) -> bool:
    """Whether ONNX Runtime runs ``model`` on a batch of ``batch`` blank images of the spec's size."""
    import onnxruntime as ort

    rule = spec.preprocess.rule
    height, width = rule.network if rule.mode != geometry.KEEP_ASPECT else (320, 320)
    dims = [3, height, width] if spec.preprocess.layout == "NCHW" else [height, width, 3]
    dtype = np.uint8 if image.dtype == "TYPE_UINT8" else np.float32
    feed = {image.name: np.zeros([batch, *dims], dtype=dtype)}
    if extra is not None:
        feed[extra.name] = np.tile(
            np.array([[height, width]], dtype=np.int64 if extra.dtype == "TYPE_INT64" else np.int32), (batch, 1)
        )
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 4
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        results = session.run(None, feed)
    except Exception:  # noqa: BLE001 - any failure means: not at this batch size
        return False
    return all(np.asarray(r).ndim >= 1 and np.asarray(r).shape[0] == batch for r in results)


def prepare_model(spec: EnsembleSpec, model: onnx.ModelProto, labels: int) -> tuple[onnx.ModelProto, ModelSignature]:
    """The file as it will be served, and its tensor signature; :class:`SpecError` where spec and file disagree."""
    where = f"{spec.source.name} vs {spec.model.name if spec.model else 'the model'}"
    inputs, outputs = graph_tensors(model, where)
    image, sizes = find_image_input(spec, inputs, where)
    check_image_input(spec, image, where)
    marks = {p.key: p.value for p in model.metadata_props}
    batching = BATCH_FREE
    if (
        len(image.shape) == 4
        and image.shape[0] == -1
        and marks.get(BATCHING_KEY) in (BATCH_MADE_FREE, BATCH_ONE, BATCH_ADDED)
    ):
        batching = marks[BATCHING_KEY]  # served before: the batch dimension is ours, the graph's limit stays
    elif len(image.shape) == 3:
        model, batching = add_batch_dimension(model), BATCH_ADDED
    elif image.shape[0] == 1:
        freed = free_batch_dimension(model)
        batching = BATCH_MADE_FREE if runs_with_batch(freed, image, spec, 2, sizes) else BATCH_ONE
        model = freed
    elif image.shape[0] > 1:
        raise SpecError(
            f"{where}: input '{image.name}' has a fixed batch of {image.shape[0]}; "
            "export it with a free batch dimension or a batch of 1"
        )
    inputs, outputs = graph_tensors(model, where)
    image = next(t for t in inputs if t.name == image.name)
    unbatched = [t for t in [*inputs, *outputs] if not t.shape or t.shape[0] != -1]
    if unbatched:
        kind = "input" if unbatched[0] in inputs else "output"
        raise SpecError(
            f"{where}: {kind} '{unbatched[0].name}' has shape {list(unbatched[0].shape)}, without the batch "
            f"dimension that input '{image.name}' has first ({list(image.shape)}); Triton batches every tensor"
        )
    default = spec.max_batch_size or DEFAULT_MAX_BATCH[spec.task]
    result = ModelSignature(
        inputs=inputs,
        outputs=outputs,
        max_batch_size=1 if batching in (BATCH_ONE, BATCH_ADDED) else default,
        batching=batching,
        image_input=image.name,
        image_sizes_input=sizes.name if sizes is not None else None,
    )
    result.roles = find_roles(spec, outputs, where)
    result.file_keypoint_shape = file_keypoint_shape(marks)
    check_outputs(spec, result, labels, where)
    result.source_name = marks.get(SOURCE_KEY) or (spec.model.name if spec.model else "")
    _mark(model, {BATCHING_KEY: batching, SOURCE_KEY: result.source_name})
    return model, result


def _mark(model: onnx.ModelProto, marks: dict[str, str]) -> None:
    """Set ``marks`` in the model's metadata (replacing entries of the same keys, keeping the others)."""
    kept = [p for p in model.metadata_props if p.key not in marks]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in marks.items():
        model.metadata_props.add(key=key, value=value)


def declared_signature(spec: EnsembleSpec, labels: int) -> ModelSignature:
    """The tensor signature a built-in spec declares ([tensors]) for a model file prepared later."""
    declared = spec.declared
    if declared is None:
        raise SpecError(f"{spec.source.name}: neither 'model' nor [tensors]")
    where = spec.source.name

    def tensor(item) -> Tensor:
        if item.dtype not in DTYPE_NAMES and item.dtype != "float32":
            raise SpecError(
                f"{where}: [tensors] '{item.name}' has dtype '{item.dtype}' (one of {', '.join(DTYPE_NAMES)})"
            )
        return Tensor(item.name, DTYPE_NAMES[item.dtype], (-1, *item.dims))

    inputs = [tensor(t) for t in declared.inputs]
    outputs = [tensor(t) for t in declared.outputs]
    image, sizes = find_image_input(spec, inputs, where)
    check_image_input(spec, image, where)
    result = ModelSignature(
        inputs=inputs,
        outputs=outputs,
        max_batch_size=declared.max_batch_size,
        batching=BATCH_ADDED if declared.batch_added else BATCH_FREE,
        image_input=image.name,
        image_sizes_input=sizes.name if sizes is not None else None,
    )
    result.roles = find_roles(spec, outputs, where)
    check_outputs(spec, result, labels, where)
    return result
