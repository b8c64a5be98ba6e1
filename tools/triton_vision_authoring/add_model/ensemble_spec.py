"""An ensemble spec (TOML): what an ONNX model needs around it to become an encoded-bytes ensemble.

```toml
name = "pets"                       # the ensemble's name; composing models are NAME_*
task = "classification"             # classification | detection | segmentation | embedding |
                                    # instance-segmentation | keypoints
model = "pets.onnx"                 # paths relative to the spec file
labels = "pets.txt"                 # one class name per line

[preprocess]
resize = "shorter-crop"             # shorter-crop | stretch | letterbox | keep-aspect
size = [224, 224]                   # the network input's height, width (keep-aspect: omit)
shorter = 256                       # shorter-crop: the shorter side before the centre crop
channels = "RGB"                    # RGB | BGR
layout = "NCHW"                     # NCHW | NHWC
dtype = "float32"                   # float32 | uint8 (raw 0..255 pixels, no normalisation)
mean = [0.485, 0.456, 0.406]        # float32: value = (pixel / 255 - mean) / std, in `channels` order
std = [0.229, 0.224, 0.225]         # (or pixel_mean/pixel_std: the same on 0..255 pixels)

[postprocess]
output = "logits"                   # classification: logits | probabilities
```

:data:`.keys.KEYS` lists every key with its meaning (the README's reference table is tied to it by a
test). Parsing refuses unknown keys, wrong types and values outside their choices with messages
naming the file, the key, what it must be and what it is.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import triton_vision_contract as contract
from triton_vision_authoring.add_model.keypoint_keys import KeypointKeys, parse_keypoint_keys
from triton_vision_authoring.add_model.keys import DEFAULT_MAX_QUEUE_SIZE, DEFAULT_QUEUE_TIMEOUT_MS, KEYS
from triton_vision_models import detection, exact_resize, geometry
from triton_vision_models import tensors as t
from triton_vision_models.errors import ConfigError
from triton_vision_models.preprocessing import PreprocessSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class SpecError(ConfigError):
    """An ensemble spec is unusable, or disagrees with its model file."""


TASKS = tuple(task for task in contract.TASKS if task != contract.PIPELINE)  # pipelines: pipeline_spec.py
CHANNELS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("float32", "uint8")
INTERPOLATIONS = ("linear", "cubic", "nearest")
CLASSIFICATION_OUTPUTS = ("logits", "probabilities")
DETECTION_FORMATS = ("torchvision", "tf-od", "yolo", "yolov5", "yolox")
NMS_FORMATS = detection.NMS_FORMATS  # the formats whose NMS runs in the post-processing (iou_threshold)
SEGMENTATION_FORMATS = ("logits-nchw", "logits-nhwc", "class-map")
INSTANCE_FORMATS = ("yolo-seg", "torchvision-maskrcnn")
KEYPOINT_FORMATS = ("yolo-pose", "torchvision-keypointrcnn")
FORMATS = {
    contract.DETECTION: DETECTION_FORMATS,
    contract.SEGMENTATION: SEGMENTATION_FORMATS,
    contract.INSTANCE_SEGMENTATION: INSTANCE_FORMATS,
    contract.KEYPOINT_TASK: KEYPOINT_FORMATS,
}
# Tasks whose answer is detections (boxes, scores, classes): the detection keys apply to them all.
DETECTION_TASKS = (contract.DETECTION, contract.INSTANCE_SEGMENTATION, contract.KEYPOINT_TASK)
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# Images per request when the spec does not say (the built-in ensembles' sizes); a model that
# cannot batch gets 1. image_guard, shared by every ensemble, takes at most MAX_IMAGES_PER_REQUEST.
DEFAULT_MAX_BATCH = {
    contract.CLASSIFICATION: 32,
    contract.DETECTION: 4,
    contract.SEGMENTATION: 4,
    contract.EMBEDDING: 32,
    contract.INSTANCE_SEGMENTATION: 4,
    contract.KEYPOINT_TASK: 4,
}
# Tasks whose answer is about the whole image, not its pixels: their preprocessing gives no sizes and
# their post-processing maps nothing back; a classifier-sized backbone (its model's instances).
WHOLE_IMAGE_TASKS = (contract.CLASSIFICATION, contract.EMBEDDING)
# How an embedding model's output becomes one vector per image ([postprocess] pooling).
POOLINGS = ("none", "cls", "mean")
MAX_IMAGES_PER_REQUEST = 32

# Conventional output names per role, by task and format (what an export usually calls them).
ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "classification": {"scores": ()},
    "torchvision": {"boxes": ("boxes",), "scores": ("scores",), "labels": ("labels",), "count": ("count",)},
    "tf-od": {
        "boxes": ("detection_boxes",),
        "scores": ("detection_scores",),
        "classes": ("detection_classes",),
        "count": ("num_detections",),
    },
    "yolo": {"predictions": ("output0",)},
    "yolov5": {"predictions": ("output0", "output")},
    "yolox": {"predictions": ("output",)},
    "yolo-seg": {"predictions": ("output0",), "prototypes": ("output1",)},
    "yolo-pose": {"predictions": ("output0",)},
    "torchvision-keypointrcnn": {
        "boxes": ("boxes",),
        "scores": ("scores",),
        "labels": ("labels",),
        "keypoints": ("keypoints",),
        "keypoint_scores": ("keypoints_scores",),
        "count": ("count",),
    },
    "torchvision-maskrcnn": {
        "boxes": ("boxes",),
        "scores": ("scores",),
        "labels": ("labels",),
        "masks": ("masks",),
        "count": ("count",),
    },
    "logits-nchw": {"logits": ("out",)},
    "logits-nhwc": {"logits": ()},
    "class-map": {"classes": ()},
    "embedding": {"embedding": ()},
}
OPTIONAL_ROLES = {("torchvision", "count"), ("torchvision-maskrcnn", "count"), ("torchvision-keypointrcnn", "count")}
# What each resize rule's sizes are, for the message when one is missing.
RULE_KEY_HINTS = {
    "size": "the network input's [height, width]",
    "shorter": "the shorter side before the centre crop, at least the crop's larger side",
    "min_size": "the target of the shorter side",
    "max_size": "the cap of the longer side",
}
# [preprocess] keys that only one resize rule reads.
RULE_KEYS = {
    "shorter": geometry.SHORTER_CROP,
    "pad": geometry.LETTERBOX,
    "fill": geometry.LETTERBOX,
    "min_size": geometry.KEEP_ASPECT,
    "max_size": geometry.KEEP_ASPECT,
    "size_divisible": geometry.KEEP_ASPECT,
}
# [postprocess] keys that only some tasks read (iou_threshold: the NMS formats only).
POSTPROCESS_TASKS: dict[str, tuple[str, ...]] = {
    "output": (contract.CLASSIFICATION,),
    "top_k": (contract.CLASSIFICATION,),
    "label_offset": DETECTION_TASKS,
    "score_threshold": DETECTION_TASKS,
    "max_detections": DETECTION_TASKS,
    "iou_threshold": DETECTION_TASKS,
    "keypoint_names": (contract.KEYPOINT_TASK,),
    "skeleton": (contract.KEYPOINT_TASK,),
    "keypoint_shape": (contract.KEYPOINT_TASK,),
    "normalize": (contract.EMBEDDING,),
    "pooling": (contract.EMBEDDING,),
}


@dataclass(frozen=True)
class PostprocessSpec:
    output: str = "logits"
    format: str = ""
    label_offset: int = 0
    tensors: Mapping[str, str] = field(default_factory=dict)
    top_k: int | None = None  # None: the wire contract's default, or every class where there are fewer
    score_threshold: float = contract.DEFAULT_SCORE_THRESHOLD
    max_detections: int = contract.DEFAULT_MAX_DETECTIONS
    iou_threshold: float = 0.45
    normalize: bool = True  # embedding: L2-normalised
    pooling: str = "none"  # embedding: none, cls or mean (a token output)
    keypoints: KeypointKeys = field(default_factory=KeypointKeys)


@dataclass(frozen=True)
class QueueSpec:
    """The bounds of each composing model's queue (Triton's queue policy of the default priority)."""

    max_size: int = DEFAULT_MAX_QUEUE_SIZE  # requests; 0: unbounded
    timeout_ms: int = DEFAULT_QUEUE_TIMEOUT_MS  # 0: no limit


@dataclass(frozen=True)
class DeclaredTensor:
    name: str
    dtype: str  # ONNX-style: float32, int64, uint8, ...
    dims: tuple[int, ...]  # without the batch dimension, -1 free


@dataclass(frozen=True)
class DeclaredSignature:
    """The model's tensors, for built-in models whose ONNX file is prepared after generation."""

    inputs: tuple[DeclaredTensor, ...]
    outputs: tuple[DeclaredTensor, ...]
    max_batch_size: int
    batch_added: bool = False  # the file has no batch dimension; `models prepare` adds one (max_batch_size 1)


@dataclass(frozen=True)
class EnsembleSpec:
    name: str
    task: str
    source: Path  # the spec file
    labels: Path | None  # None: an embedding model (no classes)
    preprocess: PreprocessSpec
    postprocess: PostprocessSpec
    model: Path | None = None
    model_name: str = ""
    max_batch_size: int | None = None
    description: str = ""
    shared_prefix: str = ""  # the shared models are <shared_prefix>image_guard and <shared_prefix>model_info
    image_input: str | None = None
    image_sizes_input: str | None = None
    declared: DeclaredSignature | None = None
    queue: QueueSpec = field(default_factory=QueueSpec)
    cache: bool = True  # the image's part is NAME_infer, an ensemble with the response cache

    @property
    def infer_name(self) -> str:
        return f"{self.name}_infer"

    @property
    def preprocess_name(self) -> str:
        return f"{self.name}_preprocess"

    @property
    def postprocess_name(self) -> str:
        return f"{self.name}_postprocess"

    @property
    def image_guard_name(self) -> str:
        return f"{self.shared_prefix}{t.IMAGE_GUARD}"

    @property
    def model_info_name(self) -> str:
        return f"{self.shared_prefix}{t.MODEL_INFO}"

    @property
    def format(self) -> str:
        """The post-processing's input format (classification, embedding: the task's only one)."""
        return self.postprocess.format or self.task

    @property
    def label_name(self) -> str:
        """The label file's name ("" for a task without classes)."""
        return self.labels.name if self.labels is not None else ""

    @property
    def whole_image(self) -> bool:
        """The answer is about the whole image (no sizes from the preprocessing, nothing mapped back)."""
        return self.task in WHOLE_IMAGE_TASKS


# -- parsing ----------------------------------------------------------------------------------
class Table:
    """One TOML table being read (its keys are known: :func:`refuse_unknown_keys` ran first)."""

    def __init__(self, data: Mapping[str, Any], path: Path, table: str) -> None:
        self.data, self.path, self.table = dict(data), path, table

    def where(self, key: str) -> str:
        return f"{self.path.name}: {f'[{self.table}] ' if self.table else ''}'{key}'"

    def fail(self, key: str, wanted: str) -> SpecError:
        return SpecError(f"{self.where(key)} must be {wanted}, got {self.data[key]!r}")

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, kind: type | tuple[type, ...], wanted: str, default: Any = None) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(key, wanted)
        if not isinstance(value, kind):
            raise self.fail(key, wanted)
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.get(key, str, "one of " + ", ".join(choices), default)
        if value is not None and value not in choices:
            raise self.fail(key, "one of " + ", ".join(choices))
        return value

    def numbers(self, key: str, count: int, default: Any = None, *, integers: bool = False) -> Any:
        kind = "whole numbers" if integers else "numbers"
        wanted = f"a list of {count} {kind}"
        value = self.get(key, list, wanted, default)
        if value is default:
            return default
        allowed = (int,) if integers else (int, float)
        if len(value) != count or any(isinstance(v, bool) or not isinstance(v, allowed) for v in value):
            raise self.fail(key, wanted)
        return tuple(int(v) if integers else float(v) for v in value)


def _listed(items: tuple[str, ...]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def refuse_unknown_keys(
    data: Mapping[str, Any], path: Path, keys: Mapping[str, Mapping[str, tuple[str, str]]] = KEYS
) -> None:
    """Refuse the first unknown key of any table (``keys``: every key, per table), before any other
    check: a misspelt key would otherwise be reported as the missing key it was meant to be."""
    tables = [name for name in keys if name]
    for table in ["", *tables]:
        values = data if not table else data.get(table)
        if not isinstance(values, dict):
            continue  # absent, or not a table: the parser names what it must be
        known = list(keys[table]) + (tables if not table else [])
        for key in values:
            if key in known:
                continue
            hint = _did_you_mean(key, known)
            owners = [name for name in keys if name != table and key in keys[name]]  # in the wrong table?
            if owners:
                where = " or ".join(f"[{name}]" if name else "the top level" for name in owners)
                hint += f" {key!r} is a key of {where}" if hint else f"; it is a key of {where}"
            listed = ", ".join(keys[table]) + ("; tables " + ", ".join(f"[{n}]" for n in tables) if not table else "")
            raise SpecError(f"{path.name}: unknown key {f'[{table}] ' if table else ''}'{key}'{hint} (known: {listed})")


def _path(table: Table, key: str, *, required: bool) -> Path | None:
    value = table.get(key, str, "a path (relative to the spec file)")
    if value is None:
        if required:
            raise SpecError(f"{table.path.name}: '{key}' is missing ({KEYS[''][key][1]})")
        return None
    path = Path(value)
    return path if path.is_absolute() else (table.path.parent / path)


def _preprocess(table: Table) -> PreprocessSpec:
    mode = table.choice("resize", geometry.RESIZE_MODES)
    if mode is None:
        raise SpecError(
            f"{table.path.name}: [preprocess] 'resize' is missing (one of {', '.join(geometry.RESIZE_MODES)})"
        )
    size = table.numbers("size", 2, integers=True)
    if size is not None and min(size) < 1:
        raise table.fail("size", "[height, width] of positive whole numbers")
    shorter = table.get("shorter", int, "a whole number")
    min_size = table.get("min_size", (int, float), "a number")
    max_size = table.get("max_size", (int, float), "a number")
    pad = table.choice("pad", geometry.PAD_POSITIONS, geometry.CENTER)
    size_divisible = table.get("size_divisible", int, "a whole number >= 1", 1)
    for key, used_by in RULE_KEYS.items():
        if table.has(key) and mode != used_by:
            raise SpecError(f"{table.where(key)} applies to resize '{used_by}', not '{mode}'")
    if size_divisible < 1:
        raise table.fail("size_divisible", "a whole number >= 1")
    if mode == geometry.KEEP_ASPECT and size is not None:
        raise SpecError(f"{table.where('size')}: resize 'keep-aspect' takes the image's own size (omit size)")
    needed = {geometry.SHORTER_CROP: ("size", "shorter"), geometry.KEEP_ASPECT: ("min_size", "max_size")}
    missing = [key for key in needed.get(mode, ("size",)) if not table.has(key)]
    if missing:
        raise SpecError(
            f"{table.path.name}: [preprocess] resize '{mode}' needs {' and '.join(repr(k) for k in missing)} "
            f"({'; '.join(f'{k}: {RULE_KEY_HINTS[k]}' for k in missing)})"
        )
    if mode == geometry.SHORTER_CROP and size is not None and shorter is not None and shorter < max(size):
        raise SpecError(
            f"{table.where('shorter')} = {shorter} is below the crop's larger side (size = {list(size)}): "
            "the centre crop would run past the resized image"
        )
    try:
        rule = geometry.ResizeRule(mode, size, shorter, min_size, max_size, pad or geometry.CENTER, size_divisible)
    except ConfigError as exc:
        raise SpecError(f"{table.path.name}: [preprocess] {exc}") from None
    dtype = table.choice("dtype", DTYPES, "float32") or "float32"
    mean, std, pixel_units = _normalisation(table)
    for key in ("mean", "std", "pixel_mean", "pixel_std"):
        if dtype == "uint8" and table.has(key):
            raise SpecError(f"{table.where(key)} applies to dtype float32, not uint8 (raw 0..255 pixels)")
    fill = table.get("fill", (int, float, str), 'a pixel value 0..255 or "mean"', "mean" if dtype == "float32" else 0)
    if (isinstance(fill, str) and fill != "mean") or (not isinstance(fill, str) and not 0 <= fill <= 255):
        raise table.fail("fill", 'a pixel value 0..255 or "mean"')
    if fill == "mean" and dtype == "uint8":
        raise table.fail("fill", "a pixel value 0..255 (dtype uint8 has no mean)")
    resize_like, antialias = _resize_like(table, rule.mode)
    return PreprocessSpec(
        rule=rule,
        channels=table.choice("channels", CHANNELS, "RGB") or "RGB",
        layout=table.choice("layout", LAYOUTS, "NCHW") or "NCHW",
        dtype=dtype,
        mean=mean,
        std=std,
        interpolation=table.choice("interpolation", INTERPOLATIONS, "linear") or "linear",
        antialias=antialias,
        resize_like=resize_like,
        fill=fill if isinstance(fill, str) else float(fill),
        pixel_units=pixel_units,
    )


# The library each rule comes from, whose resize it follows unless the spec says (keep-aspect resizes
# float pixels as torchvision's detection transform: DALI's float resize, nothing to reproduce).
RESIZE_LIKE_DEFAULTS = {
    geometry.SHORTER_CROP: exact_resize.PILLOW,  # torchvision's Resize on PIL images
    geometry.STRETCH: exact_resize.PILLOW,
    geometry.LETTERBOX: exact_resize.OPENCV,  # Ultralytics' and YOLOX's letterbox
    geometry.KEEP_ASPECT: exact_resize.DALI,
}


def _resize_like(table: Table, mode: str) -> tuple[str, bool]:
    """``resize_like`` and ``antialias``: a library's resize filters as that library does (Pillow always
    when shrinking, OpenCV's INTER_LINEAR never), so a contradicting ``antialias`` is refused."""
    default = RESIZE_LIKE_DEFAULTS[mode]
    library = table.choice("resize_like", exact_resize.LIBRARIES, default) or default
    if mode == geometry.KEEP_ASPECT and library != exact_resize.DALI:
        raise SpecError(
            f"{table.where('resize_like')}: resize 'keep-aspect' resizes float pixels (torchvision's detection "
            "transform), with DALI's resize on every path; resize_like applies to shorter-crop, stretch and letterbox"
        )
    antialias = table.get("antialias", bool, "true or false")
    if library in exact_resize.ANTIALIASES:
        own = exact_resize.ANTIALIASES[library]
        if antialias is not None and antialias != own:
            does = "always filters when shrinking" if own else "never filters (INTER_LINEAR)"
            raise SpecError(
                f'{table.where("antialias")} = {str(antialias).lower()} contradicts resize_like = "{library}": '
                f'its resize {does}; leave antialias out, or resize_like = "dali" for DALI\'s resize'
            )
        return library, own
    return library, True if antialias is None else antialias


def _normalisation(table: Table) -> tuple[tuple[float, float, float], tuple[float, float, float], bool]:
    """Mean and std in 0..1 units, and whether the spec wrote them in 0..255 pixel units (pixel_mean/pixel_std,
    as Detectron's and mmdetection's configs do)."""
    mean = table.numbers("mean", 3, (0.0, 0.0, 0.0))
    std = table.numbers("std", 3, (1.0, 1.0, 1.0))
    pixel_mean = table.numbers("pixel_mean", 3)
    pixel_std = table.numbers("pixel_std", 3)
    pixel_units = pixel_mean is not None or pixel_std is not None
    if pixel_units:
        clash = next((key for key in ("mean", "std") if table.has(key)), None)
        if clash is not None:
            other = "pixel_mean" if pixel_mean is not None else "pixel_std"
            raise SpecError(
                f"{table.where(clash)} and '{other}' say the same in other units (0..1 and 0..255 pixels): "
                "write one pair"
            )
        mean = tuple(m / 255 for m in (pixel_mean or (0.0, 0.0, 0.0)))
        std = tuple(s / 255 for s in (pixel_std or (1.0, 1.0, 1.0)))
    key = "pixel_std" if table.has("pixel_std") else "std"
    if any(s <= 0 for s in std):
        raise table.fail(key, "a list of 3 positive numbers")
    return mean, std, pixel_units


def _postprocess(table: Table, task: str) -> PostprocessSpec:
    formats = FORMATS.get(task)
    output = table.choice("output", CLASSIFICATION_OUTPUTS, "logits") or "logits"
    for key, used_by in POSTPROCESS_TASKS.items():
        if table.has(key) and task not in used_by:
            raise SpecError(f"{table.where(key)} applies to task {_listed(used_by)}, not {task}")
    fmt = ""
    if formats is not None:
        fmt = table.choice("format", formats) or ""
        if not fmt:
            raise SpecError(
                f"{table.path.name}: [postprocess] 'format' is missing (for {task}: one of {', '.join(formats)})"
            )
    elif table.has("format"):
        raise SpecError(f"{table.where('format')} applies to {', '.join(FORMATS)}, not {task}")
    if table.has("iou_threshold") and fmt not in NMS_FORMATS:
        raise SpecError(
            f"{table.where('iou_threshold')} applies to format {', '.join(map(repr, NMS_FORMATS))} (their NMS), "
            f"not '{fmt}'"
        )
    label_offset = table.get("label_offset", int, "a whole number", 0)
    tensors = table.get("tensors", dict, "a table of role = tensor name", {})
    roles = ROLES[fmt or task]
    for role, name in tensors.items():
        if role not in roles:
            raise SpecError(
                f"{table.path.name}: [postprocess.tensors] '{role}' is not a role of format "
                f"'{fmt or task}'{_did_you_mean(role, list(roles))} (roles: {', '.join(roles)})"
            )
        if not isinstance(name, str):
            raise SpecError(f"{table.path.name}: [postprocess.tensors] '{role}' must be a tensor name, got {name!r}")
    top_k = table.get("top_k", int, "a whole number >= 1")
    threshold = table.get("score_threshold", (int, float), "a number in [0, 1]", contract.DEFAULT_SCORE_THRESHOLD)
    max_detections = table.get("max_detections", int, "a whole number >= 1", contract.DEFAULT_MAX_DETECTIONS)
    iou = table.get("iou_threshold", (int, float), "a number in [0, 1]", 0.45)
    if top_k is not None and top_k < 1:
        raise table.fail("top_k", "a whole number >= 1")
    if not 0 <= threshold <= 1:
        raise table.fail("score_threshold", "a number in [0, 1]")
    if max_detections < 1:
        raise table.fail("max_detections", "a whole number >= 1")
    if not 0 <= iou <= 1:
        raise table.fail("iou_threshold", "a number in [0, 1]")
    normalize = table.get("normalize", bool, "true or false", True)
    pooling = table.choice("pooling", POOLINGS, "none") or "none"
    keypoints = parse_keypoint_keys(table)
    if keypoints.shape is not None and fmt != "yolo-pose":
        raise SpecError(f"{table.where('keypoint_shape')} applies to format 'yolo-pose' (its rows), not '{fmt}'")
    return PostprocessSpec(
        output,
        fmt,
        label_offset,
        dict(tensors),
        top_k,
        float(threshold),
        max_detections,
        float(iou),
        normalize,
        pooling,
        keypoints,
    )


def _declared(table: Table) -> DeclaredSignature:
    def tensors(key: str) -> tuple[DeclaredTensor, ...]:
        items = table.get(key, list, "a list of {name, dtype, dims} tables", [])
        found = []
        for item in items:
            if not isinstance(item, dict) or set(item) != {"name", "dtype", "dims"}:
                raise table.fail(key, "a list of {name, dtype, dims} tables")
            found.append(DeclaredTensor(str(item["name"]), str(item["dtype"]), tuple(int(d) for d in item["dims"])))
        return tuple(found)

    inputs, outputs = tensors("inputs"), tensors("outputs")
    batch_added = table.get("batch_added", bool, "true or false", False)
    max_batch = table.get("max_batch_size", int, "a whole number >= 0", 1 if batch_added else 0)
    if batch_added and max_batch != 1:
        raise SpecError(
            f"{table.where('max_batch_size')} is {max_batch}, but a model whose batch dimension was added takes one "
            "image per execution (batch_added = true): 1"
        )
    return DeclaredSignature(inputs, outputs, max_batch, batch_added)


def parse_queue(top: Table) -> QueueSpec:
    """The top-level ``max_queue_size`` and ``queue_timeout_ms`` (a spec's or a pipeline spec's)."""
    queue = QueueSpec(
        top.get("max_queue_size", int, "a whole number >= 0", DEFAULT_MAX_QUEUE_SIZE),
        top.get("queue_timeout_ms", int, "a whole number of milliseconds >= 0", DEFAULT_QUEUE_TIMEOUT_MS),
    )
    if queue.max_size < 0:
        raise top.fail("max_queue_size", "a whole number >= 0")
    if queue.timeout_ms < 0:
        raise top.fail("queue_timeout_ms", "a whole number of milliseconds >= 0")
    return queue


def parse_spec(text: str, path: Path) -> EnsembleSpec:
    """A spec from TOML ``text`` (``path`` resolves its relative paths and names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path.name}: not valid TOML: {exc}") from None
    if data.get("task") == contract.PIPELINE:
        raise SpecError(
            f'{path.name} is a pipeline spec (task = "pipeline"): it has no model of its own '
            "(`triton-vision add-model` writes it over the ensembles it names)"
        )
    refuse_unknown_keys(data, path)
    top = Table(data, path, "")
    name = top.get("name", str, "a model name")
    if name is None:
        raise SpecError(f"{path.name}: 'name' is missing (the ensemble's name)")
    if not NAME_PATTERN.fullmatch(name):
        raise top.fail("name", "letters, digits, '_', '.' and '-' (not starting with '.' or '-')")
    task = top.choice("task", TASKS)
    if task is None:
        raise SpecError(f"{path.name}: 'task' is missing (one of {', '.join(TASKS)})")
    model = _path(top, "model", required=False)
    labels = _path(top, "labels", required=task != contract.EMBEDDING)
    if labels is not None and task == contract.EMBEDDING:
        raise SpecError(f"{top.where('labels')} applies to tasks with classes, not embedding (an embedding has none)")
    model_name = top.get("model_name", str, "a model name", f"{name}_model")
    if not NAME_PATTERN.fullmatch(model_name):
        raise top.fail("model_name", "letters, digits, '_', '.' and '-'")
    max_batch = top.get("max_batch_size", int, f"a whole number in 1..{MAX_IMAGES_PER_REQUEST}")
    if max_batch is not None and not 1 <= max_batch <= MAX_IMAGES_PER_REQUEST:
        raise top.fail("max_batch_size", f"a whole number in 1..{MAX_IMAGES_PER_REQUEST}")
    description = top.get("description", str, "a string", "")
    cache = top.get("cache", bool, "true or false", True)
    shared_prefix = top.get("shared_prefix", str, "a model-name prefix", "")
    if shared_prefix and not NAME_PATTERN.fullmatch(shared_prefix):
        raise top.fail("shared_prefix", "letters, digits, '_', '.' and '-'")
    queue = parse_queue(top)
    tables = {}
    for key in ("preprocess", "postprocess", "inputs", "tensors"):
        value = top.get(key, dict, "a table", {})
        tables[key] = Table(value, path, key)
    if not top.has("preprocess"):
        raise SpecError(f"{path.name}: the [preprocess] table is missing (resize, size, ...)")
    preprocess = _preprocess(tables["preprocess"])
    postprocess = _postprocess(tables["postprocess"], task)
    inputs = tables["inputs"]
    image_input = inputs.get("image", str, "an input name")
    image_sizes = inputs.get("image_sizes", str, "an input name")
    if image_sizes is not None and task not in DETECTION_TASKS:
        raise SpecError(f"{inputs.where('image_sizes')} applies to task {_listed(DETECTION_TASKS)}, not {task}")
    declared = _declared(tables["tensors"]) if top.has("tensors") else None
    if model is None and declared is None:
        raise SpecError(f"{path.name}: 'model' is missing (the ONNX file, relative to the spec file)")
    if preprocess.rule.mode == geometry.KEEP_ASPECT and task == contract.CLASSIFICATION:
        raise SpecError(
            f"{path.name}: [preprocess] resize 'keep-aspect' gives images of different sizes; "
            "a classifier needs a fixed size (shorter-crop, stretch or letterbox)"
        )
    if preprocess.rule.mode == geometry.KEEP_ASPECT and postprocess.format == "yolo-seg":
        raise SpecError(
            f"{path.name}: [postprocess] format 'yolo-seg' gives mask prototypes over the whole network input, "
            "whose size resize 'keep-aspect' leaves to each batch (its largest image): use letterbox"
        )
    if preprocess.rule.mode == geometry.KEEP_ASPECT and postprocess.format == "tf-od":
        raise SpecError(
            f"{path.name}: [postprocess] format 'tf-od' gives boxes normalised to the network input, whose size "
            "resize 'keep-aspect' leaves to each batch (its largest image): use stretch or letterbox"
        )
    return EnsembleSpec(
        name=name,
        task=task,
        source=path,
        labels=labels,
        preprocess=preprocess,
        postprocess=postprocess,
        model=model,
        model_name=model_name,
        max_batch_size=max_batch,
        description=description,
        shared_prefix=shared_prefix,
        image_input=image_input,
        image_sizes_input=image_sizes,
        declared=declared,
        queue=queue,
        cache=cache,
    )


def load_spec(path: Path) -> EnsembleSpec:
    """The spec in file ``path``; :class:`SpecError` if it cannot be read or is invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc}") from None
    return parse_spec(text, path)
