"""Produce the ONNX files the model repository serves; they are never committed.

For each ONNX model of the repository (:data:`.catalogue.CATALOGUE`) there are three sources, tried in
this order by ``prepare`` unless one is asked for:

1. ``--from PATH``: a local ``.onnx`` file, checked against the config's tensor signature. A
   file with one input and one output named otherwise (e.g. ``input``/``output``) has them
   renamed to the signature's names.
2. a download with a pinned sha256 (where the network allows);
3. a stand-in: the real architecture and tensor signature with random weights, clearly marked.
   Where the real architecture needs torch (an export) and torch is not installed, or exists only
   as the download, a small graph with the same tensor signature instead (and, for the export, a
   note saying how to get the real one).

A file without a batch dimension (an entry marked ``unbatched``: the ONNX model zoo's Faster R-CNN)
gets one of size 1 added, whatever its source, as ``add-model`` does; it is served with
``max_batch_size`` 1.

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
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from triton_vision_authoring import standins, torch_tools
from triton_vision_authoring.add_model.batching import add_batch_dimension
from triton_vision_authoring.catalogue import (  # noqa: F401 - re-exported: what `models prepare` makes
    CATALOGUE,
    Download,
    ModelEntry,
    TensorSignature,
)
from triton_vision_contract.errors import UsageError
from triton_vision_models.errors import ModelFileError
from triton_vision_models.provenance import ModelSource
from triton_vision_models.repository import ONNXRUNTIME, ModelRepository

MODEL_FILENAME = "model.onnx"


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


def conform(model: onnx.ModelProto, entry: ModelEntry, origin: str, *, served: bool = False) -> onnx.ModelProto:
    """Check ``model`` against the entry's tensor signature, renaming a lone input/output if needed; for an
    ``unbatched`` entry, a file without the batch dimension comes back with one added (a new model).
    ``served``: a file already in the repository, which must fit as it is (by name, batch dimension included)."""
    renames = _signature_renames(model.graph, entry, origin, rename=not served)
    if renames:
        _rename_tensors(model.graph, renames)
    if entry.unbatched and not served and _lacks_batch_dimension(model.graph, entry):
        model = add_batch_dimension(model)
    _check_shapes(model.graph, entry, origin)
    return model


def _lacks_batch_dimension(graph: onnx.GraphProto, entry: ModelEntry) -> bool:
    """Whether the signature's inputs have exactly the signature's dimensions (no batch dimension before them)."""
    shapes = {value.name: _shape(value) for value in graph.input}
    return all(len(shapes.get(name, ())) == len(dims) for name, dims in entry.signature.inputs.items())


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
        kind = file_kind(path)
        hint = " or a torchvision state dict (.pth)" if entry.convert is not None else ""
        converters = [key for key, other in CATALOGUE.items() if other.convert is not None]
        if entry.convert is None and kind.startswith("a zip") and converters:
            hint = f"; torchvision state dicts go to --model {' or '.join(converters)} (their own ensemble)"
        raise UsageError(
            f"{what} {path}: not an ONNX model ({kind}; {type(exc).__name__}); "
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
                served = conform(onnx.load(str(partial), load_external_data=False), entry, item.url)
                if entry.unbatched:  # the batch dimension added: the served file is the rewritten one
                    return _install(served, repository, entry, "download", item.url, arrived_sha256=digest)
                return _install(partial, repository, entry, "download", item.url)
        except (OSError, ModelFileError) as exc:
            errors.append(f"{item.url}: {exc}")
    raise ModelFileError(f"model '{entry.name}': no download succeeded ({'; '.join(errors) or 'none known'})")


def _needs_conversion(item: Download, entry: ModelEntry) -> bool:
    return not item.url.endswith(".onnx") and entry.convert is not None


SMALL_GRAPH = "small graph with the same tensor signature"
SMALL_STAND_IN_ORIGIN = f"{SMALL_GRAPH} (torch not installed), random weights, seed 0"
DOWNLOAD_ONLY_ORIGIN = f"{SMALL_GRAPH} (the real architecture comes only as the download), random weights, seed 0"


SMALL_GRAPH_NOTE = "a small graph with the same tensor signature, not the real architecture"


def is_small_graph(source: ModelSource) -> bool:
    """Whether a stand-in is a small graph of the tensor signature, not the real architecture."""
    return source.is_stand_in and source.origin.startswith(SMALL_GRAPH)


def describe(source: ModelSource) -> str:
    """``source.describe()``, saying so when a stand-in is the small graph, not the real architecture."""
    if is_small_graph(source):
        return f"{source.describe()}; {SMALL_GRAPH_NOTE}"
    return source.describe()


def make_stand_in(repository: Path, entry: ModelEntry, report: Callable[[str], None] = print) -> ModelSource:
    """The real architecture with random weights; a small graph with the same tensor signature where only the
    download has the real architecture, or where it needs torch and torch is missing (and ``report`` says
    how to get the real architecture)."""
    if entry.build_stand_in is None:
        if entry.small_stand_in is None:
            raise ModelFileError(f"model '{entry.name}': no stand-in is known")
        return _install_stand_in(entry.small_stand_in(), repository, entry, DOWNLOAD_ONLY_ORIGIN)
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
        return _install_stand_in(entry.small_stand_in(), repository, entry, SMALL_STAND_IN_ORIGIN)
    return _install_stand_in(model, repository, entry, "random weights, seed 0")


def _install_stand_in(model: onnx.ModelProto, repository: Path, entry: ModelEntry, origin: str) -> ModelSource:
    """A stand-in served as the real file would be (an unbatched entry's gets its batch dimension)."""
    return _install(conform(model, entry, origin), repository, entry, "stand-in", origin)


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
                conform(onnx.load(str(path), load_external_data=False), entry, str(path), served=True)
                return current
            except ModelFileError as exc:
                report(f"{entry.name}: the prepared file no longer fits its tensor signature ({exc}); replacing it")
    if entry.downloads:
        try:
            return download(entry, repository)
        except ModelFileError as exc:
            report(f"{entry.name}: download failed ({exc}); making a stand-in instead")
    return make_stand_in(repository, entry, report)
