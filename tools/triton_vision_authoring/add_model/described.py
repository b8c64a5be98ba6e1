"""An ensemble spec from a model file that describes itself: Ultralytics' ONNX exports.

Ultralytics records in the file's ``metadata_props`` what it was trained for and how it reads images:
``task`` (detect, segment, pose, ...), ``imgsz`` ([height, width]), ``names`` (a Python dict literal,
class id -> name), ``stride``, and for pose ``kpt_shape`` ([keypoints, 2 or 3]). From them
:func:`described_spec` writes the spec Ultralytics' own predictor implies: its LetterBox (aspect kept,
centred, grey 114, OpenCV's bilinear without antialiasing), RGB pixel / 255, and its predict defaults
(``conf`` 0.25, ``iou`` 0.7, ``max_det`` 300). The spec is an ordinary one: add-model prints it and keeps
it as ``NAME/spec.toml``, where it can be edited and given back to add-model, and a spec written by
hand overrides all of it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import onnx

from triton_vision_authoring.add_model.ensemble_spec import NAME_PATTERN, SpecError

# Ultralytics' task -> (ours, our format)
ULTRALYTICS_TASKS = {
    "detect": ("detection", "yolo"),
    "segment": ("instance-segmentation", "yolo-seg"),
    "pose": ("keypoints", "yolo-pose"),
}
# Ultralytics' predict defaults (ultralytics/cfg/default.yaml): conf, iou, max_det.
CONF, IOU, MAX_DET = 0.25, 0.7, 300


@dataclass(frozen=True)
class Description:
    """What an Ultralytics export says about itself."""

    task: str  # Ultralytics' own word (detect, segment, pose)
    size: tuple[int, int]  # imgsz: the network input's height, width
    names: tuple[str, ...]  # class names by id 0..C-1
    keypoints: tuple[int, int] | None = None  # kpt_shape: (J, 2 or 3)
    producer: str = "Ultralytics"


def _literal(value: str, key: str, where: str):
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise SpecError(f"{where}: metadata '{key}' is not a literal ({value[:60]!r})") from None


def read_description(model: onnx.ModelProto, where: str) -> Description | None:
    """The file's Ultralytics metadata, or None where it has none (the file does not describe itself)."""
    props = {p.key: p.value for p in model.metadata_props}
    if "task" not in props or "names" not in props or "imgsz" not in props:
        return None
    task = props["task"]
    if task not in ULTRALYTICS_TASKS:
        raise SpecError(
            f"{where}: an Ultralytics '{task}' model; add-model reads {', '.join(ULTRALYTICS_TASKS)} exports by "
            "themselves (write a spec for this one: docs/add-model.md)"
        )
    imgsz = _literal(props["imgsz"], "imgsz", where)
    if isinstance(imgsz, int):
        imgsz = [imgsz, imgsz]
    if not (isinstance(imgsz, (list, tuple)) and len(imgsz) == 2 and all(isinstance(v, int) for v in imgsz)):
        raise SpecError(f"{where}: metadata 'imgsz' must be [height, width], got {props['imgsz']!r}")
    names = _literal(props["names"], "names", where)
    if isinstance(names, dict):
        ids = sorted(names)
        if ids != list(range(len(ids))):
            raise SpecError(f"{where}: metadata 'names' must number the classes 0..C-1, got ids {ids[:5]}...")
        names = [names[i] for i in ids]
    if not isinstance(names, (list, tuple)) or not names:
        raise SpecError(f"{where}: metadata 'names' must list the class names, got {props['names'][:60]!r}")
    keypoints = None
    if task == "pose":
        shape = _literal(props.get("kpt_shape", "None"), "kpt_shape", where)
        if not (isinstance(shape, (list, tuple)) and len(shape) == 2 and shape[1] in (2, 3)):
            raise SpecError(f"{where}: a pose model's metadata 'kpt_shape' must be [keypoints, 2 or 3], got {shape!r}")
        keypoints = (int(shape[0]), int(shape[1]))
    return Description(task, (int(imgsz[0]), int(imgsz[1])), tuple(str(n) for n in names), keypoints)


def default_name(model_path: Path) -> str:
    """The file's stem as an ensemble name (characters a name cannot hold become '_')."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", model_path.stem).lstrip(".-") or "model"
    return name if NAME_PATTERN.fullmatch(name) else f"m_{name}"


def spec_text(description: Description, name: str, model: str, labels: str) -> str:
    """The spec Ultralytics' predictor implies, as TOML with a comment per choice."""
    task, fmt = ULTRALYTICS_TASKS[description.task]
    height, width = description.size
    lines = [
        f"# Written by `triton-vision add-model` from the metadata of {Path(model).name}:",
        f"# {description.producer} task '{description.task}', imgsz [{height}, {width}], {len(description.names)} "
        "classes.",
        "# Edit it and run `triton-vision add-model` on it: a spec overrides what the file says.",
        f'name = "{name}"',
        f'task = "{task}"',
        f'model = "{model}"',
        "# labels: the metadata's names, in class-id order",
        f'labels = "{labels}"',
        "",
        "[preprocess]",
        'resize = "letterbox"          # Ultralytics\' LetterBox: aspect kept, centred, grey 114 padding',
        f"size = [{height}, {width}]",
        'pad = "center"',
        "fill = 114",
        "antialias = false             # OpenCV's INTER_LINEAR, as Ultralytics resizes",
        "",
        "[postprocess]",
        f'format = "{fmt}"',
        f"score_threshold = {CONF}        # Ultralytics' predict defaults: conf, iou, max_det",
        f"iou_threshold = {IOU}",
        f"max_detections = {MAX_DET}",
    ]
    if description.keypoints is not None:
        joints, values = description.keypoints
        lines += [
            f"keypoint_shape = [{joints}, {values}]   # kpt_shape: keypoints, values each (x, y[, visibility])",
            "# keypoint_names = [...] and skeleton = [[a, b], ...] name and join them (default: COCO's for 17)",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DescribedResult:
    spec_path: Path  # the kept spec, NAME/spec.toml in the repository
    text: str  # its text


def add_described_model(model_path: Path, repository: Path, *, name: str | None = None, force: bool = False):
    """add-model for a file that describes itself: the spec from its metadata, then the usual path (the
    kept ``NAME/spec.toml`` is that spec). Returns (the :class:`~.add_model.AddResult`, the kept spec)."""
    import tempfile

    from triton_vision_authoring.add_model.add_model import SPEC_FILENAME, add_model
    from triton_vision_authoring.add_model.onnx_model import load_onnx

    where = model_path.name
    description = read_description(load_onnx(model_path), where)
    if description is None:
        raise SpecError(
            f"{where}: the file does not describe itself (no Ultralytics metadata: task, imgsz, names); "
            "write a spec for it and give add-model the spec (docs/add-model.md)"
        )
    name = name or default_name(model_path)
    if not NAME_PATTERN.fullmatch(name):
        raise SpecError(f"--name {name!r}: letters, digits, '_', '.' and '-' (not starting with '.' or '-')")
    with tempfile.TemporaryDirectory(prefix="add-model-described-") as staging:
        spec_path = Path(staging) / f"{name}.toml"
        labels = f"{name}.labels.txt"
        (Path(staging) / labels).write_text("".join(f"{n}\n" for n in description.names), encoding="utf-8")
        spec_path.write_text(spec_text(description, name, str(model_path.resolve()), labels), encoding="utf-8")
        result = add_model(spec_path, repository, force=force)
    kept = repository / name / SPEC_FILENAME
    return result, DescribedResult(kept, kept.read_text(encoding="utf-8"))
