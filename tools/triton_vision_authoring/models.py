"""Produce the ONNX files the model repository serves; they are never committed.

For each ONNX model of the repository there are three sources, tried in this order by
``prepare`` unless one is asked for:

1. ``--from PATH``: a local ``.onnx`` file, checked against the config's tensor signature. A
   file with one input and one output named otherwise (e.g. ``input``/``output``) has them
   renamed to the signature's names.
2. a download with a pinned sha256 (where the network allows);
3. a stand-in: the real architecture and tensor signature with random weights, clearly marked.
   Where the real architecture needs torch (an export) and torch is not installed, a small graph
   with the same tensor signature instead, and a note saying how to get the real one.

Next to each ``model.onnx`` a ``model.source.json`` records where it came from. Files are
written readable by everyone the umask allows (0644 under the usual 022): the server that reads
them may run as another user (the container's ``triton-server``, a mounted volume).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from triton_vision_authoring import standins, torch_tools
from triton_vision_contract.errors import UsageError
from triton_vision_models import tensors as t
from triton_vision_models.errors import ModelFileError
from triton_vision_models.provenance import ModelSource
from triton_vision_models.repository import ONNXRUNTIME, ModelRepository

MODEL_FILENAME = "model.onnx"


@dataclass(frozen=True)
class TensorSignature:
    """Tensor names (and non-batch shapes, -1 free) a model file must have."""

    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str


@dataclass(frozen=True)
class ModelEntry:
    name: str  # model directory in model_repository/
    description: str
    signature: TensorSignature
    build_stand_in: Callable[[], onnx.ModelProto]
    downloads: tuple[Download, ...] = field(default_factory=tuple)
    # Turns a non-ONNX weights file (a torchvision .pth state dict) into the ONNX model; None: ONNX only.
    convert: Callable[[Path], onnx.ModelProto] | None = None
    # Same tensor signature without torch, where build_stand_in needs it (an export); None: not needed.
    small_stand_in: Callable[[], onnx.ModelProto] | None = None
    # The choice a user faces once this model is in place (`models prepare` prints it); None: none.
    choice: str | None = None


CATALOGUE: dict[str, ModelEntry] = {
    t.CLASSIFIER: ModelEntry(
        name=t.CLASSIFIER,
        description="ResNet-18 v1 (ONNX model zoo resnet18-v1-7)",
        signature=TensorSignature(
            inputs={t.CLASSIFIER_INPUT: (3, t.CLASSIFIER_INPUT_SIZE, t.CLASSIFIER_INPUT_SIZE)},
            outputs={t.CLASSIFIER_OUTPUT: (1000,)},
        ),
        build_stand_in=lambda: standins.resnet18_model(t.CLASSIFIER_INPUT, t.CLASSIFIER_OUTPUT),
        downloads=(
            Download(
                url="https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet18-v1-7.onnx",
                sha256="4e8f8653e7a2222b3904cc3fe8e304cd8b339ce1d05fd24688162f86fb6df52c",
            ),
        ),
    ),
}


def _fcn_stand_in() -> onnx.ModelProto:
    from triton_vision_authoring.segmentation_onnx import torchvision_fcn

    return torchvision_fcn()


def _small_fcn() -> onnx.ModelProto:
    from triton_vision_authoring.segmentation_onnx import tiny_fcn

    return tiny_fcn()


CATALOGUE[t.SEGMENTER] = ModelEntry(
    name=t.SEGMENTER,
    description="FCN-ResNet50 (ONNX model zoo fcn-resnet50-11, 21 Pascal VOC classes)",
    signature=TensorSignature(
        inputs={t.SEGMENTER_INPUT: (3, -1, -1)},
        outputs={t.SEGMENTER_OUTPUT: (t.VOC_CLASSES, -1, -1), t.SEGMENTER_AUX: (t.VOC_CLASSES, -1, -1)},
    ),
    build_stand_in=_fcn_stand_in,
    small_stand_in=_small_fcn,
    downloads=(
        Download(
            url="https://github.com/onnx/models/raw/main/validated/vision/object_detection_segmentation/fcn/model/fcn-resnet50-11.onnx",
            sha256="8abd3ae6c258e6fd210d8fb296261ea5c0603c6cc2f568db6097f6fbaaeff0d5",
        ),
    ),
)


# -- detection: torchvision Faster R-CNN, exported (export extra) --------------------------------
# Measured with `bench --ensemble detection --compare-onnx` (docs/performance.md): the two
# architectures in-process on 2 cores, 3101 and 505 ms per photo; box mAP from torchvision's weights table.
DETECTOR_CHOICE = {
    "resnet50_fpn_v2": (
        "on a CPU this detector takes about 3 s per photo (2 cores); `triton-vision models prepare --model "
        f"{t.DETECTOR_MOBILENET} --force` serves MobileNetV3-Large-FPN instead: about 6x faster, box mAP 32.8 "
        "instead of 46.7 (docs/performance.md). On a GPU keep this one."
    ),
    "mobilenet_v3": (
        "MobileNetV3-Large-FPN is the CPU choice (about 0.5 s per photo on 2 cores, box mAP 32.8); on a GPU, "
        f"`triton-vision models prepare --model {t.DETECTOR} --force` serves ResNet-50-FPN v2 (box mAP 46.7)."
    ),
}


def _faster_rcnn_entry(arch: str, description: str, download: Download) -> ModelEntry:
    def stand_in() -> onnx.ModelProto:
        from triton_vision_authoring.detection_onnx import export_faster_rcnn

        return export_faster_rcnn(arch)

    def convert(path: Path) -> onnx.ModelProto:
        from triton_vision_authoring.detection_onnx import export_faster_rcnn

        return export_faster_rcnn(arch, path)

    return ModelEntry(
        name=t.DETECTOR,  # both architectures serve from model_repository/faster_rcnn
        description=description,
        choice=DETECTOR_CHOICE[arch],
        signature=TensorSignature(
            inputs={t.DETECTOR_INPUT: (3, -1, -1), t.DETECTOR_IMAGE_SIZES: (2,)},
            outputs={
                t.DETECTOR_BOXES: (-1, 4),
                t.DETECTOR_SCORES: (-1,),
                t.DETECTOR_LABELS: (-1,),
                t.DETECTOR_COUNT: (1,),
            },
        ),
        build_stand_in=stand_in,
        downloads=(download,),
        convert=convert,
        small_stand_in=lambda: standins.small_detector(
            t.DETECTOR_INPUT,
            t.DETECTOR_IMAGE_SIZES,
            (t.DETECTOR_BOXES, t.DETECTOR_SCORES, t.DETECTOR_LABELS, t.DETECTOR_COUNT),
        ),
    )


# `models prepare` (and demo) use the key of a directory that exists: faster_rcnn (ResNet-50-FPN v2).
# `models prepare --model faster_rcnn_mobilenet_v3 [--force]` puts MobileNetV3 there instead.
# Downloads are torchvision's COCO_V1 state dicts (sizes approximate), exported on arrival.
CATALOGUE[t.DETECTOR] = _faster_rcnn_entry(
    "resnet50_fpn_v2",
    "Faster R-CNN ResNet-50-FPN v2 (torchvision COCO_V1, box mAP 46.7), exported to ONNX",
    Download(
        url="https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
        sha256="dd69338a24b8d7381807e247652bdc356325bcbaf1cd3e092e00e0a1a58706bf",
    ),
)
CATALOGUE[t.DETECTOR_MOBILENET] = _faster_rcnn_entry(
    "mobilenet_v3",
    "Faster R-CNN MobileNetV3-Large-FPN (torchvision COCO_V1, box mAP 32.8; CPU-friendly), exported to ONNX",
    Download(
        url="https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
        sha256="fb6a3cc702b1df54c18a44b26708cd083614211062d0c36d2ca7bf9270df3533",
    ),
)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_dir(repository: Path, name: str) -> Path:
    return repository / name / "1"


def recorded_source(repository: Path, name: str) -> ModelSource | None:
    """The recorded source (``model.source.json``) of a prepared model, or None if it is not prepared."""
    folder = version_dir(repository, name)
    return ModelSource.read(folder) if (folder / MODEL_FILENAME).is_file() else None


@dataclass(frozen=True)
class PreparedModel:
    """One ONNX model of a repository and its file (``models status``, ``serve``)."""

    name: str
    path: Path  # the version folder's model file, present or not
    source: ModelSource | None  # None: no model.source.json

    @property
    def prepared(self) -> bool:
        return self.path.is_file()

    @property
    def size(self) -> int:
        return self.path.stat().st_size if self.prepared else 0

    @property
    def kind(self) -> str:
        if not self.prepared:
            return "NOT PREPARED"
        if self.source is None:
            try:
                return "stand-in" if standins.is_stand_in(self.path) else "unrecorded"
            except (DecodeError, OSError, ValueError):
                return "not ONNX"
        return self.source.kind

    def as_dict(self) -> dict:
        source = {"source": vars(self.source)} if self.source is not None else {}
        return {"model": self.name, "kind": self.kind, "size": self.size, "path": str(self.path), **source}

    def describe(self) -> str:
        if self.source is not None:
            return describe(self.source)
        return f"{self.kind}: {self.path} (no {self.path.parent.name}/model.source.json says where it came from)"


def prepared_models(repository: ModelRepository) -> list[PreparedModel]:
    """Every ONNX model of the repository (whatever its name) and its newest version's file."""
    rows = []
    for name in repository.of_kind(ONNXRUNTIME):
        model = repository[name]
        versions = model.versions
        folder = versions[-1] if versions else model.directory / "1"
        path = folder / (model.model_filename or MODEL_FILENAME)
        rows.append(PreparedModel(name, path, ModelSource.read(folder) if path.is_file() else None))
    return rows


def file_kind(path: Path) -> str:
    """What a file that should hold a model looks like, by its first bytes (for error messages)."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a torch .pth file?)"
    if not head:
        return "empty"
    return "not a model file this command reads"


def _shape(value_info: onnx.ValueInfoProto) -> tuple[int, ...]:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)


def conform(model: onnx.ModelProto, entry: ModelEntry, origin: str, *, rename: bool = True) -> onnx.ModelProto:
    """Check ``model`` against the entry's tensor signature, renaming a lone input/output if needed
    (and allowed: a file already in the repository must match by name)."""
    renames = _signature_renames(model.graph, entry, origin, rename=rename)
    if renames:
        _rename_tensors(model.graph, renames)
    _check_shapes(model.graph, entry, origin)
    return model


def _signature_renames(graph: onnx.GraphProto, entry: ModelEntry, origin: str, *, rename: bool) -> dict[str, str]:
    """Old -> new names that make the graph's inputs and outputs the signature's (a lone tensor only)."""
    initializer_names = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializer_names]
    renames: dict[str, str] = {}
    for kind, actual, wanted in (
        ("input", inputs, entry.signature.inputs),
        ("output", list(graph.output), entry.signature.outputs),
    ):
        names = {v.name for v in actual}
        if names == set(wanted):
            continue
        if rename and len(actual) == 1 and len(wanted) == 1:
            renames[actual[0].name] = next(iter(wanted))
            continue
        raise ModelFileError(
            f"{origin}: {kind}s {sorted(names)} do not match model '{entry.name}' tensor signature {sorted(wanted)}"
        )
    return renames


def _rename_tensors(graph: onnx.GraphProto, renames: dict[str, str]) -> None:
    for value in list(graph.input) + list(graph.output):
        if value.name in renames:
            value.name = renames[value.name]
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]


def _check_shapes(graph: onnx.GraphProto, entry: ModelEntry, origin: str) -> None:
    """Every tensor of the signature has a dynamic batch dimension and the signature's other dimensions."""
    signature = {**entry.signature.inputs, **entry.signature.outputs}
    for value in list(graph.input) + list(graph.output):
        wanted = signature.get(value.name)
        if wanted is None:
            continue
        shape = _shape(value)
        needs = f"model '{entry.name}' needs [batch, {', '.join(map(str, wanted))}]"
        if len(shape) != len(wanted) + 1 or shape[0] not in (-1, 0):
            raise ModelFileError(
                f"{origin}: tensor '{value.name}' has shape {list(shape)}; {needs} with a dynamic batch dimension"
            )
        for got, want in zip(shape[1:], wanted, strict=True):
            if want != -1 and got not in (-1, 0, want):
                raise ModelFileError(f"{origin}: tensor '{value.name}' has shape {list(shape)}; {needs}")


def readable_mode() -> int:
    """rw for the owner, r for group and others, as far as the umask allows (0644 under 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o644 & ~mask | 0o600


def _install(
    model_or_file: onnx.ModelProto | Path,
    repository: Path,
    entry: ModelEntry,
    kind: str,
    origin: str,
    *,
    arrived_sha256: str = "",
) -> ModelSource:
    folder = version_dir(repository, entry.name)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MODEL_FILENAME
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".onnx.partial", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        if isinstance(model_or_file, Path):
            shutil.copyfile(model_or_file, tmp_path)
        else:
            onnx.save(model_or_file, str(tmp_path))
        tmp_path.chmod(readable_mode())  # mkstemp made it 0600
        tmp_path.replace(target)
    finally:
        tmp_path.unlink(missing_ok=True)
    digest = sha256_of(target)
    source = ModelSource.installed(kind, origin, digest, arrived_sha256)
    source.write(folder)
    return source


def _load_onnx(path: Path, what: str, entry: ModelEntry) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError) as exc:
        hint = " or a torchvision state dict (.pth)" if entry.convert is not None else ""
        raise UsageError(
            f"{what} {path}: not an ONNX model ({file_kind(path)}; {type(exc).__name__}); "
            f"model '{entry.name}' takes an ONNX file{hint}"
        ) from None


def _convert(entry: ModelEntry, path: Path, what: str) -> onnx.ModelProto:
    """A state dict exported to ONNX by ``entry.convert``; a file that is none is named."""
    if entry.convert is None:
        raise ModelFileError(f"model '{entry.name}' takes ONNX files only, not {path}")
    kind = file_kind(path)
    if kind.startswith(("a JPEG", "a PNG", "empty")):
        raise UsageError(f"{what} {path}: not a model file ({kind}); model '{entry.name}' takes an ONNX file or a .pth")
    return entry.convert(path)


def import_local(path: Path, repository: Path, entry: ModelEntry) -> ModelSource:
    if not path.is_file():
        raise UsageError(f"--from {path}: no such file")
    arrived = sha256_of(path)
    if path.suffix.lower() != ".onnx" and entry.convert is not None:
        converted = conform(_convert(entry, path, "--from"), entry, str(path))
        return _install(converted, repository, entry, "local", str(path.resolve()), arrived_sha256=arrived)
    model = _load_onnx(path, "--from", entry)
    original = onnx.load(str(path))
    conformed = conform(model, entry, str(path))
    unchanged = conformed.SerializeToString() == original.SerializeToString()
    return _install(
        path if unchanged else conformed, repository, entry, "local", str(path.resolve()), arrived_sha256=arrived
    )


def download(entry: ModelEntry, repository: Path, *, timeout: float = 30.0) -> ModelSource:
    errors = []
    for item in entry.downloads:
        if _needs_conversion(item, entry) and not torch_tools.available():
            errors.append(f"{item.url}: not fetched, a state dict: exporting it to ONNX needs torch")
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                partial = Path(tmp) / MODEL_FILENAME
                with urllib.request.urlopen(item.url, timeout=timeout) as response, partial.open("wb") as out:
                    shutil.copyfileobj(response, out, 1 << 20)
                digest = sha256_of(partial)
                if digest != item.sha256:
                    raise ModelFileError(f"{item.url}: sha256 {digest} differs from the pinned {item.sha256}")
                if _needs_conversion(item, entry):
                    converted = conform(_convert(entry, partial, "download"), entry, item.url)
                    return _install(converted, repository, entry, "download", item.url, arrived_sha256=digest)
                conform(onnx.load(str(partial), load_external_data=False), entry, item.url)
                return _install(partial, repository, entry, "download", item.url)
        except (OSError, ModelFileError) as exc:
            errors.append(f"{item.url}: {exc}")
    raise ModelFileError(f"model '{entry.name}': no download succeeded ({'; '.join(errors) or 'none known'})")


def _needs_conversion(item: Download, entry: ModelEntry) -> bool:
    return not item.url.endswith(".onnx") and entry.convert is not None


SMALL_STAND_IN_ORIGIN = "small graph with the same tensor signature (torch not installed), random weights, seed 0"


def describe(source: ModelSource) -> str:
    """``source.describe()``, saying so when a stand-in is the small graph, not the real architecture."""
    if source.is_stand_in and source.origin == SMALL_STAND_IN_ORIGIN:
        return f"{source.describe()}; a small graph with the same tensor signature, not the real architecture"
    return source.describe()


def make_stand_in(repository: Path, entry: ModelEntry, report: Callable[[str], None] = print) -> ModelSource:
    """The real architecture with random weights; without torch, where it needs torch, a small
    graph with the same tensor signature (and ``report`` says how to get the real architecture)."""
    try:
        model = entry.build_stand_in()
    except torch_tools.ExportToolsMissingError as exc:
        if entry.small_stand_in is None:
            raise
        report(
            f"{entry.name}: {exc}. Serving a small stand-in with the same tensor signature instead (not the real "
            f"architecture); after installing them, `triton-vision models prepare --model {entry.name} --force` "
            "makes the real one"
        )
        return _install(entry.small_stand_in(), repository, entry, "stand-in", SMALL_STAND_IN_ORIGIN)
    return _install(model, repository, entry, "stand-in", "random weights, seed 0")


def prepare(
    repository: Path,
    entry: ModelEntry,
    *,
    from_path: Path | None = None,
    stand_in: bool = False,
    force: bool = False,
    report: Callable[[str], None] = print,
) -> ModelSource:
    """Put a model file in place, by the first source that works (see the module docstring)."""
    if from_path is not None:
        return import_local(from_path, repository, entry)
    if stand_in:
        return make_stand_in(repository, entry, report)
    current = recorded_source(repository, entry.name)
    if current is not None and not force:
        path = version_dir(repository, entry.name) / MODEL_FILENAME
        if sha256_of(path) == current.sha256:
            try:
                conform(onnx.load(str(path), load_external_data=False), entry, str(path), rename=False)
                return current
            except ModelFileError as exc:
                report(f"{entry.name}: the prepared file no longer fits its tensor signature ({exc}); replacing it")
    if entry.downloads:
        try:
            return download(entry, repository)
        except ModelFileError as exc:
            report(f"{entry.name}: download failed ({exc}); making a stand-in instead")
    return make_stand_in(repository, entry, report)
