"""``triton-vision add-model SPEC.toml``: write an ensemble and its models into a repository.

From one spec (see :mod:`.modelspec`) it writes ``NAME`` (ensemble, with the spec as
``NAME/spec.toml``), ``NAME_preprocess`` (DALI, ``dali.py`` from the spec), the ONNX model
(``NAME_model``: the file, its batch dimension made free where needed, its config from the
file's own tensors, the label file beside it) and ``NAME_postprocess`` (Python, set up by its
config's parameters), plus ``image_guard`` and ``model_info`` where the repository lacks them.
The result is checked with ``triton-vision check`` before the command returns.

A spec without ``model`` declares its model's tensors (``[tensors]``): the built-in ensembles,
whose ONNX files ``triton-vision models prepare`` produces later, are generated so.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from triton_vision_authoring.add_model import configs
from triton_vision_authoring.add_model.configs import ModelFiles
from triton_vision_authoring.add_model.dali_source import dali_source
from triton_vision_authoring.add_model.ensemble_spec import DEFAULT_MAX_BATCH, EnsembleSpec, SpecError, load_spec
from triton_vision_authoring.add_model.onnx_model import (
    ModelSignature,
    count_labels,
    declared_signature,
    load_onnx,
    prepare_model,
)
from triton_vision_models.provenance import ModelSource

SPEC_FILENAME = "spec.toml"
MODEL_FILENAME = "model.onnx"
KEEP = "1/.gitkeep"


@dataclass
class Generated:
    """What one spec gives: the model directories' text files, and the ONNX file to install."""

    spec: EnsembleSpec
    signature: ModelSignature
    max_batch_size: int
    models: list[ModelFiles] = field(default_factory=list)
    onnx_model: onnx.ModelProto | None = None

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]


def generate(spec: EnsembleSpec, *, spec_text: str | None = None) -> Generated:
    """The files of ``spec``'s four models (the ONNX file is read, checked and adapted, not written)."""
    labels = count_labels(spec.labels) if spec.labels is not None else 0
    if spec.model is not None:
        served, model = prepare_model(spec, load_onnx(spec.model), labels)
        prepared_by = f"copied from {model.source_name} by `triton-vision add-model`"
    else:
        served, model = None, declared_signature(spec, labels)
        prepared_by = "produced by `triton-vision models prepare`"
    wanted = spec.max_batch_size or DEFAULT_MAX_BATCH[spec.task]
    max_batch = max(1, min(wanted, model.max_batch_size))
    generated = Generated(spec, model, max_batch, onnx_model=served)
    ensemble_files = {"config.pbtxt": configs.ensemble_config(spec, model, max_batch), KEEP: ""}
    if spec_text is not None:
        ensemble_files[SPEC_FILENAME] = spec_text
    model_files = {"config.pbtxt": configs.model_config(spec, model, max_batch, prepared_by=prepared_by)}
    if spec.labels is not None:
        model_files[spec.labels.name] = spec.labels.read_text(encoding="utf-8")
    if served is None:
        model_files[KEEP] = ""
    generated.models = [ModelFiles(spec.name, ensemble_files)]
    if spec.cache:
        generated.models.append(
            ModelFiles(spec.infer_name, {"config.pbtxt": configs.infer_config(spec, model, max_batch), KEEP: ""})
        )
    generated.models += [
        ModelFiles(
            spec.preprocess_name,
            {
                "config.pbtxt": configs.preprocess_config(spec, model, max_batch),
                "1/dali.py": dali_source(spec, max_batch),
            },
        ),
        ModelFiles(spec.model_name, model_files),
        ModelFiles(
            spec.postprocess_name,
            {
                "config.pbtxt": configs.postprocess_config(spec, model, max_batch),
                "1/model.py": configs.postprocess_source(spec),
            },
        ),
    ]
    return generated


def relocated_spec(spec: EnsembleSpec, text: str) -> str:
    """The spec's text as kept in ``NAME/spec.toml``: ``model`` and ``labels`` point into the repository."""
    moves = {"labels": f"../{spec.model_name}/{spec.labels.name}"} if spec.labels is not None else {}
    if spec.model is not None:
        moves["model"] = f"../{spec.model_name}/1/{MODEL_FILENAME}"
    for key, value in moves.items():
        text, count = re.subn(rf'^{key}\s*=\s*(".*?"|\'.*?\')', f'{key} = "{value}"', text, count=1, flags=re.MULTILINE)
        if count != 1:
            raise SpecError(f"{spec.source.name}: write '{key}' as a top-level string (key = \"path\")")
    return f"# Kept by `triton-vision add-model` from {spec.source.name}; paths point into this repository.\n{text}"


@dataclass(frozen=True)
class AddResult:
    spec: EnsembleSpec
    written: list[str]  # model directories written
    shared: list[str]  # image_guard / model_info, written because the repository lacked them
    max_batch_size: int
    batching: str
    source: ModelSource | None


def _install_onnx(model: onnx.ModelProto, version_dir: Path, origin: Path) -> ModelSource:
    """Write ``model`` (``origin``'s graph, rewritten: its batch dimension, our metadata) as the served file."""
    version_dir.mkdir(parents=True, exist_ok=True)
    target = version_dir / MODEL_FILENAME
    with tempfile.NamedTemporaryFile(dir=version_dir, suffix=".onnx.partial", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        onnx.save(model, str(partial))
        os.chmod(partial, 0o644)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    sha256 = hashlib.sha256(target.read_bytes()).hexdigest()
    source = ModelSource.installed("local", str(origin), sha256, hashlib.sha256(origin.read_bytes()).hexdigest())
    source.write(version_dir)
    return source


def write_model(repository: Path, files: ModelFiles) -> None:
    directory = repository / files.name
    for relative, text in files.files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.write_text(text, encoding="utf-8")


def add_model(spec_path: Path, repository: Path, *, force: bool = False) -> AddResult:
    """Write ``spec_path``'s ensemble into ``repository`` (see the module docstring).

    The models are written and checked in a staging repository first; the repository is only
    touched once they pass ``triton-vision check``."""
    if not repository.is_dir():
        raise SpecError(
            f"model repository {repository} is not a directory (create it, `triton-vision init {repository}` writes "
            "the built-in one, or point --model-repository at yours)"
        )
    spec = load_spec(spec_path)
    in_place = spec_path.resolve() == (repository / spec.name / SPEC_FILENAME).resolve()
    text = spec_path.read_text(encoding="utf-8")
    generated = generate(spec, spec_text=None if in_place else relocated_spec(spec, text))
    clashes = [name for name in generated.names if (repository / name).exists()]
    if clashes and not force and not in_place:
        raise SpecError(
            f"{repository} already has {', '.join(clashes)} "
            f"(choose another name in {spec_path.name}, or --force to replace)"
        )
    shared = [files for files in configs.shared_files(spec) if not (repository / files.name).exists()]
    served = repository / spec.model_name / "1" / MODEL_FILENAME
    install = generated.onnx_model is not None and spec.model is not None and spec.model.resolve() != served.resolve()
    with tempfile.TemporaryDirectory(prefix="add-model-") as staging_dir:
        _check_staged(Path(staging_dir), repository, generated, shared, served, install)
    for files in generated.models:
        directory = repository / files.name
        if directory.exists() and not in_place:
            _remove_except(
                directory, served if files.name == spec.model_name and generated.onnx_model is None else None
            )
        write_model(repository, files)
    for files in shared:
        write_model(repository, files)
    source = None
    if install and generated.onnx_model is not None and spec.model is not None:
        source = _install_onnx(generated.onnx_model, served.parent, spec.model.resolve())
    return AddResult(
        spec, generated.names, [f.name for f in shared], generated.max_batch_size, generated.signature.batching, source
    )


def _check_staged(
    staging: Path, repository: Path, generated: Generated, shared: list[ModelFiles], served: Path, install: bool
) -> None:
    """Write the models into ``staging`` (with the repository's image_guard, read for the wiring) and
    check them there; :class:`SpecError` naming the problems."""
    from triton_vision_authoring.check import check_repository

    guard_name = generated.spec.image_guard_name
    guard = repository / guard_name
    if guard.is_dir() and all(files.name != guard_name for files in shared):
        shutil.copytree(guard, staging / guard_name, ignore=shutil.ignore_patterns("__pycache__"))
    for files in [*generated.models, *shared]:
        write_model(staging, files)
    staged = staging / generated.spec.model_name / "1" / MODEL_FILENAME
    staged.parent.mkdir(parents=True, exist_ok=True)
    if install and generated.onnx_model is not None:
        onnx.save(generated.onnx_model, str(staged))
    elif served.is_file():  # in place, or a prepared built-in: check the file that will be served
        staged.symlink_to(served.resolve())
    report = check_repository(staging, [*generated.names, *(f.name for f in shared)])
    if not report.ok:
        raise SpecError(
            "the generated models do not pass `triton-vision check`: " + "; ".join(map(str, report.problems))
        )


def _remove_except(directory: Path, keep: Path | None) -> None:
    """Empty a model directory before it is written again (keeping a prepared ONNX file if asked)."""
    kept = keep.read_bytes() if keep is not None and keep.is_file() else None
    shutil.rmtree(directory)
    if kept is not None and keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_bytes(kept)


def expected_files(spec_path: Path) -> dict[str, dict[str, str]]:
    """{model: {relative path: text}} a spec generates (the unit test compares the committed built-ins)."""
    spec = load_spec(spec_path)
    generated = generate(spec)
    files = {m.name: dict(m.files) for m in generated.models}
    for shared in configs.shared_files(spec):
        files[shared.name] = dict(shared.files)
    return files
