"""``triton-vision add-model PIPELINE.toml``: a pipeline over two ensembles already in the repository.

A pipeline ``NAME`` is an ensemble of the detector's image part (its steps but the last: the
response-cached ``DET_infer``, or guard, preprocessing and model) and ``NAME_objects``, a Python
model that runs the detector's post-processing, crops every object from the decoded image, and
runs the second ensemble's model and post-processing on the crops (Triton's BLS;
:mod:`triton_vision_models.pipeline`). Everything the objects step needs to know about the two
ensembles is read from the repository here and written into its config's parameters, so that
``check`` and ``export-repo`` see the models it calls.
"""

from __future__ import annotations

import difflib
import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonclient.grpc import model_config_pb2

import triton_vision_contract as contract
from triton_vision_authoring.add_model.configs import (
    GENERATED,
    ModelFiles,
    _block,
    _comment,
    _parameters,
    _scheduling,
    _step,
    _tensor,
    _write,
    detection_outputs,
    dynamic_batching,
    python_model_source,
)
from triton_vision_authoring.add_model.ensemble_spec import SpecError, load_spec
from triton_vision_authoring.add_model.pipeline_spec import PipelineSpec, parse_pipeline_spec
from triton_vision_models import detection
from triton_vision_models import tensors as t
from triton_vision_models.errors import ConfigError
from triton_vision_models.labels import load_labels
from triton_vision_models.repository import ModelRepository, RepositoryModel

SPEC_FILENAME = "spec.toml"
KEEP = "1/.gitkeep"
# Tasks whose ensembles can be a pipeline's [detect]: those answering detections (their own extra
# outputs, an instance map or keypoints, stay with the detector ensemble).
DETECTORS = (contract.DETECTION, contract.INSTANCE_SEGMENTATION, contract.KEYPOINT_TASK)
SECOND_STAGES = (contract.CLASSIFICATION, contract.EMBEDDING)  # tasks whose ensembles can be its [then]
# Each second-stage task's per-object outputs: (name, type); their dims are [K, k] or [K, D].
OBJECT_OUTPUTS = {
    contract.CLASSIFICATION: [
        (t.OBJECT_CLASS_IDS, "TYPE_INT32"),
        (t.OBJECT_SCORES, "TYPE_FP32"),
        (t.OBJECT_LABELS, "TYPE_STRING"),
    ],
    contract.EMBEDDING: [(t.OBJECT_EMBEDDINGS, "TYPE_FP32")],
}
STAGE_NOTES = {
    contract.CLASSIFICATION: "OBJECT_CLASS_IDS INT32 [K, k], OBJECT_SCORES FP32 [K, k], OBJECT_LABELS BYTES [K, k]",
    contract.EMBEDDING: "OBJECT_EMBEDDINGS FP32 [K, D] (its embedding of each object)",
}


# Two instances: a request's objects step waits on its detector's post-processing and then on the
# second model; with one instance, the next request waited behind all of it (benchmarks/pipeline.py:
# 0.83x the client-side way's images/s at concurrency 2 with one, docs/pipelines.md).
OBJECTS_INSTANCES = (
    "# Two instances, so that one request's crops and second stage overlap the next one's detection.",
    "instance_group [ { count: 2 kind: KIND_CPU } ]",
)


@dataclass(frozen=True)
class Wiring:
    """What the objects step calls, read from the repository."""

    detector: RepositoryModel
    image_steps: list[Any]  # the detector ensemble's steps but its post-processing (protobuf steps)
    post_step: Any
    detector_postprocess: RepositoryModel
    parameters: list[tuple[str, str]]
    stage_task: str
    stage_dims: int  # an embedder's D (-1 where its config does not say), else -1


def _where(spec: PipelineSpec, table: str) -> str:
    return f"{spec.source.name}: [{table}] ensemble"


def _ensemble_of(repo: ModelRepository, spec: PipelineSpec, table: str, tasks: tuple[str, ...]) -> RepositoryModel:
    name = getattr(spec, table).ensemble
    fitting = [n for n in repo.ensembles if repo[n].task in tasks]
    listed = f"its {' or '.join(tasks)} ensembles: {', '.join(fitting) or 'none'}"
    if name not in repo:
        close = difflib.get_close_matches(name, fitting, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise SpecError(f"{_where(spec, table)} '{name}' is not in {repo.path}{hint} ({listed})")
    model = repo[name]
    if not model.is_ensemble or model.task not in tasks:
        what = f"answers {model.task}" if model.task else f"is a {model.kind} model, not an ensemble of ours"
        raise SpecError(
            f"{_where(spec, table)} '{name}' {what}: a pipeline's [{table}] must be a {' or '.join(tasks)} "
            f"ensemble ({listed})"
        )
    return model


def _find_step(repo: ModelRepository, ensemble: str, model: str) -> Any | None:
    """The step of ``ensemble`` (or of an ensemble nested in it) that runs ``model``."""
    for step in repo[ensemble].config.ensemble_scheduling.step:
        if step.model_name == model:
            return step
        if step.model_name in repo and repo[step.model_name].is_ensemble and step.model_name != ensemble:
            found = _find_step(repo, step.model_name, model)
            if found is not None:
                return found
    return None


def _class_ids(spec: PipelineSpec, labels: list[str]) -> list[int] | None:
    if spec.detect.classes is None:
        return None
    ids = []
    for name in spec.detect.classes:
        found = [index for index, label in enumerate(labels) if label == name]
        if not found:
            close = difflib.get_close_matches(name, labels, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise SpecError(
                f"{spec.source.name}: [detect] classes: '{name}' is not a label of '{spec.detect.ensemble}'{hint} "
                f"({len(labels)} labels, e.g. {', '.join(labels[:5])})"
            )
        ids += found
    return sorted(set(ids))


def _detector(repo: ModelRepository, spec: PipelineSpec) -> tuple[RepositoryModel, list[Any], Any, RepositoryModel]:
    detector = _ensemble_of(repo, spec, "detect", DETECTORS)
    steps = list(detector.config.ensemble_scheduling.step)
    post_step = steps[-1]
    answers = {value for value in post_step.output_map.values()}
    if not set(contract.TASK_OUTPUTS[contract.DETECTION]) <= answers or post_step.model_name not in repo:
        raise SpecError(
            f"{_where(spec, 'detect')} '{detector.name}': its last step must be its post-processing, answering "
            f"{', '.join(contract.TASK_OUTPUTS[contract.DETECTION])} (a generated detection ensemble)"
        )
    return detector, steps[:-1], post_step, repo[post_step.model_name]


def _second_stage(repo: ModelRepository, spec: PipelineSpec) -> tuple[str, int, list[tuple[str, str]]]:
    """The second ensemble's task, an embedder's D, and the objects step's parameters that describe it."""
    stage = _ensemble_of(repo, spec, "then", SECOND_STAGES)
    kept = stage.directory / SPEC_FILENAME
    if not kept.is_file():
        raise SpecError(
            f"{_where(spec, 'then')} '{stage.name}' has no {SPEC_FILENAME} (ensembles written by `triton-vision "
            "add-model` keep theirs): its preprocessing rule, which every crop follows, is unknown"
        )
    stage_spec = load_spec(kept)
    names = (stage_spec.model_name, stage_spec.postprocess_name)
    missing = [name for name in names if name not in repo]
    if missing:
        raise SpecError(f"{_where(spec, 'then')} '{stage.name}': the repository lacks {', '.join(missing)}")
    model, post = repo[stage_spec.model_name], repo[stage_spec.postprocess_name]
    model_step = _find_step(repo, stage.name, model.name)
    if model_step is None or len(model_step.input_map) != 1 or len(model_step.output_map) != 1:
        raise SpecError(
            f"{_where(spec, 'then')} '{stage.name}': no step runs '{model.name}' with one input and one output"
        )
    post_input = post.config.input[0]
    classes = math.prod(post_input.dims) if post_input.dims and min(post_input.dims) > 0 else 0
    dims = -1
    if stage.task == contract.EMBEDDING:
        classes = 0
        answer = [o for o in post.config.output if o.name == t.EMBEDDING_OUTPUT]
        dims = int(answer[0].dims[-1]) if answer and answer[0].dims else -1
    return (
        stage.task or "",
        dims,
        [
            ("stage", stage.name),
            ("stage_task", stage.task or ""),
            ("stage_model", model.name),
            ("stage_input", next(iter(model_step.input_map))),
            ("stage_output", next(iter(model_step.output_map))),
            ("stage_max_batch", str(max(1, model.max_batch_size))),
            ("stage_postprocess", post.name),
            ("stage_postprocess_input", post_input.name),
            ("stage_postprocess_max_batch", str(max(1, post.max_batch_size))),
            ("stage_classes", str(classes)),
            ("stage_default_top_k", post.setting("default_top_k", str(contract.DEFAULT_TOP_K))),
            ("stage_preprocess", json.dumps(stage_spec.preprocess.to_json(), sort_keys=True, separators=(",", ":"))),
        ],
    )


def wiring(spec: PipelineSpec, repository: Path) -> Wiring:
    """Read the detector and the second stage from ``repository``; :class:`SpecError` naming what does not fit."""
    try:
        repo = ModelRepository.load(repository)
    except ConfigError as exc:
        raise SpecError(str(exc)) from None
    detector, image_steps, post_step, post = _detector(repo, spec)
    labels_file = post.setting("labels")
    try:
        labels = list(load_labels(repository / labels_file)) if labels_file else []
    except ConfigError as exc:
        raise SpecError(f"{_where(spec, 'detect')} '{detector.name}': {exc}") from None
    if spec.detect.classes is not None and not labels:
        raise SpecError(
            f"{_where(spec, 'detect')} '{detector.name}' has no label file: [detect] classes cannot be read"
        )
    classes = _class_ids(spec, labels)
    stage_task, stage_dims, stage_parameters = _second_stage(repo, spec)
    parameters = [
        ("pipeline", spec.name),
        ("detector", detector.name),
        ("detector_postprocess", post.name),
        ("detector_parameters", ",".join(detection.request_parameters(post.setting("format", detection.TORCHVISION)))),
        ("classes", json.dumps(classes) if classes is not None else ""),
        ("default_score_threshold", f"{spec.detect.score_threshold:g}"),
        ("default_max_objects", str(spec.detect.max_objects)),
        ("margin", f"{spec.then.margin:g}"),
        *stage_parameters,
    ]
    return Wiring(detector, image_steps, post_step, post, parameters, stage_task, stage_dims)


# -- the files -------------------------------------------------------------------------------------------
def _outputs(stage_task: str, dims: int) -> list[str]:
    per_object = -1 if stage_task == contract.CLASSIFICATION else dims
    return [
        *detection_outputs(),
        *(_tensor(name, dtype, [-1, per_object]) for name, dtype in OBJECT_OUTPUTS[stage_task]),
    ]


def _config_tensor(tensor: Any) -> str:
    extra = " allow_ragged_batch: true" if tensor.allow_ragged_batch else ""
    return _tensor(tensor.name, model_config_pb2.DataType.Name(tensor.data_type), list(tensor.dims), extra)


def _steps(spec: PipelineSpec, wired: Wiring) -> list[list[str]]:
    steps = [_step(s.model_name, sorted(s.input_map.items()), sorted(s.output_map.items())) for s in wired.image_steps]
    inputs = sorted({t.IMAGE: t.IMAGE, **dict(wired.post_step.input_map)}.items())
    outputs = [
        (name, name)
        for name in (*contract.TASK_OUTPUTS[contract.DETECTION], *(n for n, _ in OBJECT_OUTPUTS[wired.stage_task]))
    ]
    return [*steps, _step(spec.objects_name, inputs, outputs)]


def ensemble_config(spec: PipelineSpec, wired: Wiring) -> str:
    then = dict(wired.parameters)["stage"]
    return _write(
        [
            *_comment(
                spec.description
                or f"Encoded image bytes in; objects of '{wired.detector.name}', each answered by '{then}'.",
                GENERATED.format(spec=f"{spec.name}/spec.toml"),
                "IMAGE: one encoded JPEG/PNG per row, UINT8 [batch, bytes] (rows zero-padded to the longest).",
                "Outputs per image, best first, padded to K = the largest COUNT of the request: the detection "
                "outputs (BOXES FP32 [K, 4] in the original image's pixels, SCORES, CLASS_IDS, LABELS, COUNT) and "
                f"each object's second-stage answer: {STAGE_NOTES[wired.stage_task]}. Request parameters: "
                "score_threshold, max_objects"
                + (", top_k" if wired.stage_task == contract.CLASSIFICATION else "")
                + " (and the detector's own, e.g. iou_threshold).",
            ),
            f'name: "{spec.name}"',
            'platform: "ensemble"',
            f"max_batch_size: {wired.detector.max_batch_size}",
            *_block("input", [_tensor(t.IMAGE, "TYPE_UINT8", [-1])]),
            *_block("output", _outputs(wired.stage_task, wired.stage_dims)),
            *_scheduling(_steps(spec, wired)),
        ]
    )


def objects_config(spec: PipelineSpec, wired: Wiring) -> str:
    inputs = [_tensor(t.IMAGE, "TYPE_UINT8", [-1], " allow_ragged_batch: true")]
    inputs += [_config_tensor(tensor) for tensor in wired.detector_postprocess.config.input if tensor.name != t.IMAGE]
    return _write(
        [
            *_comment(
                f"The objects step of pipeline '{spec.name}': the detector's post-processing "
                f"({wired.detector_postprocess.name}), each object cropped from the decoded image and preprocessed "
                "by the second ensemble's rule, its model and post-processing on all crops of a request (Triton's "
                "business logic scripting: docs/pipelines.md). The parameters below name the models it calls. "
                + GENERATED.format(spec=f"{spec.name}/spec.toml"),
            ),
            f'name: "{spec.objects_name}"',
            'backend: "python"',
            f"max_batch_size: {wired.detector.max_batch_size}",
            *_block("input", inputs),
            *_block("output", _outputs(wired.stage_task, wired.stage_dims)),
            *OBJECTS_INSTANCES,
            *dynamic_batching(spec.queue),
            *_parameters(wired.parameters),
        ]
    )


def objects_source(spec: PipelineSpec) -> str:
    lines = python_model_source(
        f"The objects step of pipeline '{spec.name}' (generated; its config's parameters set it up).",
        "pipeline",
        "PipelineObjects",
    )
    return lines.replace(
        "from triton_vision_models.triton_adapter import python_model",
        "from triton_vision_models.triton_adapter import bls_infer, python_model",
    ).replace("PipelineObjects.from_config)", "PipelineObjects.loader(bls_infer), validate_inputs=False)")


def generate(spec: PipelineSpec, repository: Path, *, spec_text: str | None = None) -> list[ModelFiles]:
    wired = wiring(spec, repository)
    ensemble = {"config.pbtxt": ensemble_config(spec, wired), KEEP: ""}
    if spec_text is not None:
        ensemble[SPEC_FILENAME] = spec_text
    objects = {"config.pbtxt": objects_config(spec, wired), "1/model.py": objects_source(spec)}
    return [ModelFiles(spec.name, ensemble), ModelFiles(spec.objects_name, objects)]


@dataclass(frozen=True)
class PipelineResult:
    spec: PipelineSpec
    written: list[str]


def add_pipeline(spec_path: Path, text: str, repository: Path, *, force: bool = False) -> PipelineResult:
    """Write the pipeline of ``text`` (read from ``spec_path``) into ``repository``, checked first in a
    staging copy (the repository's other models linked in, for the wiring)."""
    from triton_vision_authoring.add_model.add_model import write_model
    from triton_vision_authoring.check import check_repository

    spec = parse_pipeline_spec(text, spec_path)
    in_place = spec_path.resolve() == (repository / spec.name / SPEC_FILENAME).resolve()
    kept = None if in_place else f"# Kept by `triton-vision add-model` from {spec_path.name}.\n{text}"
    models = generate(spec, repository, spec_text=kept)
    names = [files.name for files in models]
    clashes = [name for name in names if (repository / name).exists()]
    if clashes and not force and not in_place:
        raise SpecError(
            f"{repository} already has {', '.join(clashes)} "
            f"(choose another name in {spec_path.name}, or --force to replace)"
        )
    with tempfile.TemporaryDirectory(prefix="add-model-") as staging_dir:
        staging = Path(staging_dir)
        for other in repository.iterdir():
            if other.is_dir() and other.name not in names:
                (staging / other.name).symlink_to(other.resolve())
        for files in models:
            write_model(staging, files)
        report = check_repository(staging, names)
        if not report.ok:
            raise SpecError(
                "the generated models do not pass `triton-vision check`: " + "; ".join(map(str, report.problems))
            )
    for files in models:
        directory = repository / files.name
        if directory.exists() and not in_place:
            shutil.rmtree(directory)
        write_model(repository, files)
    return PipelineResult(spec, names)
