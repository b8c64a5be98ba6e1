"""``triton-vision check``: validate a Triton model repository offline, before a server sees it.

Each problem names the model, the tensor (or file), what was expected and what was found. Checked:

- the repository has an ensemble (what clients call);
- every ``config.pbtxt`` parses with Triton's own protobuf (``tritonclient.grpc.model_config_pb2``),
  is named after its directory, and has a version folder;
- ensembles: every step names a model of the repository; every ``input_map``/``output_map`` tensor
  exists on both sides with the same dtype and a compatible shape (batch dimension included);
  every model input is fed; every ensemble output is produced; no step allows fewer images than
  the ensemble;
- DALI models: each version's ``dali.py`` imports, has exactly one ``@autoserialize`` pipeline
  (the DALI backend's autoserialization convention) which serializes, its ``fn.external_source``
  names are the config's inputs and it returns as many outputs as the config declares;
- ONNX models: a present ``model.onnx`` has the config's tensor names, dtypes and ranks (fixed
  dimensions must agree); an absent one is a note (model files are prepared, never committed);
- Python models: ``model.py`` exists; label files exist (``label_filename`` next to the config,
  and the ``labels`` parameter, a path relative to the repository); a post-processing model of this
  project (its ``model.py`` builds a runner of :data:`POSTPROCESS_MODULES`) is set up from its config
  as Triton would, so a parameter it cannot take (an unknown format, keypoint names that are not a JSON
  list, a skeleton beyond them, ...) is a problem here, not a model that fails to load;
- GPU configuration is accepted: ``instance_group`` kinds, and ONNX Runtime's execution
  accelerators (``gpu_execution_accelerator`` ``tensorrt``/``cuda``, ``cpu_execution_accelerator``
  ``openvino``); an accelerator name the backend does not know is a problem.

The offline config tests (``tests/unit/authoring/test_configs.py``) use the same functions.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from tritonclient.grpc import model_config_pb2

from triton_vision_authoring.check_pipeline import check_pipeline_step, is_pipeline_step
from triton_vision_models.dali_runner import find_autoserialized, load_pipeline_module
from triton_vision_models.errors import ModelFileError
from triton_vision_models.repository import (
    DALI,
    DEFAULT_MODEL_FILENAMES,
    ENSEMBLE,
    ONNXRUNTIME,
    PYTHON,
    ModelConfig,
    ModelRepository,
    dtype_name,
    full_shape,
    kind_of,
    tensors_of,
    version_dirs,
)

DALI_PIPELINE_FILENAME = DEFAULT_MODEL_FILENAMES[DALI]
PYTHON_MODEL_FILENAME = DEFAULT_MODEL_FILENAMES[PYTHON]
ONNX_MODEL_FILENAME = DEFAULT_MODEL_FILENAMES[ONNXRUNTIME]
# The post-processing runners check loads from a Python model's config (``model.py``: ``python_model(X.from_config``).
POSTPROCESS_MODULES = ("classification", "detection", "segmentation")
RUNNER_SOURCE = re.compile(r"from triton_vision_models\.(\w+) import (\w+)\b.*python_model\(\2\.from_config", re.S)
# Parameters of this project's Python models that name a file, relative to the repository root.
FILE_PARAMETERS = ("labels",)
# Execution accelerators Triton's ONNX Runtime backend knows (onnxruntime_backend README).
ONNXRUNTIME_ACCELERATORS = {
    "gpu_execution_accelerator": ("cuda", "tensorrt"),
    "cpu_execution_accelerator": ("openvino",),
}


@dataclass(frozen=True, order=True)
class Finding:
    """One line of the report: the model it concerns and what is wrong (or worth knowing)."""

    model: str
    message: str

    def __str__(self) -> str:
        return f"{self.model}: {self.message}"


@dataclass
class Report:
    repository: Path
    models: list[str] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "repository": str(self.repository),
            "ok": self.ok,
            "models": self.models,
            "problems": [str(p) for p in self.problems],
            "notes": [str(n) for n in self.notes],
        }


# -- configs --------------------------------------------------------------------------------
def shapes_compatible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) and all(x == y or x == -1 or y == -1 for x, y in zip(a, b, strict=True))


def _names(items: Iterable[str]) -> str:
    return ", ".join(items) or "none"


# -- one model --------------------------------------------------------------------------------
def check_model_files(name: str, config: ModelConfig, repository: Path) -> tuple[list[str], list[str]]:
    """Problems and notes of one model on its own: name, version folders, code and label files."""
    problems: list[str] = []
    notes: list[str] = []
    model_dir = repository / name
    if config.name and config.name != name:
        problems.append(f"config name '{config.name}' differs from its directory name '{name}'")
    versions = version_dirs(model_dir)
    if not versions:
        problems.append("no version folder (e.g. 1/; Triton serves none without one)")
    kind = kind_of(config)
    required = {PYTHON: PYTHON_MODEL_FILENAME, DALI: DALI_PIPELINE_FILENAME}.get(kind)
    for version in versions:
        if required is not None:
            filename = config.default_model_filename or required
            if kind == DALI and (version / "model.dali").is_file():
                continue
            if not (version / filename).is_file():
                problems.append(f"the {kind} backend needs {version.name}/{filename}, which is missing")
        elif kind == ONNXRUNTIME:
            filename = config.default_model_filename or ONNX_MODEL_FILENAME
            if not (version / filename).is_file():
                notes.append(f"{version.name}/{filename} is not prepared (its tensor checks are skipped)")
    for output in config.output:
        if output.label_filename and not (model_dir / output.label_filename).is_file():
            problems.append(
                f"output '{output.name}': label_filename '{output.label_filename}' is not a file "
                f"(expected {name}/{output.label_filename})"
            )
    for key, value in config.parameters.items():
        text = value.string_value
        if text.startswith("/"):
            problems.append(f"parameter '{key}' is an absolute path '{text}' (paths are relative to the repository)")
        elif key in FILE_PARAMETERS and not (repository / text).is_file():
            problems.append(f"parameter '{key}' names '{text}', which is not a file of the repository")
    problems.extend(check_instance_groups(config))
    if kind == ONNXRUNTIME:
        problems.extend(check_accelerators(config))
    return problems, notes


def check_instance_groups(config: ModelConfig) -> list[str]:
    problems = []
    for index, group in enumerate(config.instance_group):
        if group.kind == model_config_pb2.ModelInstanceGroup.KIND_CPU and group.gpus:
            problems.append(f"instance_group {index}: KIND_CPU with gpus {list(group.gpus)} (use KIND_GPU)")
        if group.count < 0:
            problems.append(f"instance_group {index}: count must be >= 0, got {group.count}")
    return problems


def check_accelerators(config: ModelConfig) -> list[str]:
    """ONNX Runtime execution accelerators: the names its Triton backend knows."""
    problems = []
    accelerators = config.optimization.execution_accelerators
    for field_name, known in ONNXRUNTIME_ACCELERATORS.items():
        for accelerator in getattr(accelerators, field_name):
            if accelerator.name not in known:
                problems.append(
                    f"{field_name} '{accelerator.name}' is unknown to the ONNX Runtime backend "
                    f"(expected one of: {_names(known)})"
                )
    return problems


# -- ensembles --------------------------------------------------------------------------------
def check_ensemble(name: str, configs: dict[str, ModelConfig], unreadable: Iterable[str] = ()) -> list[str]:
    """The wiring of one ensemble against the configs of the models its steps name.

    A step naming a model that is missing (or whose config is ``unreadable``, reported on its own)
    stops the wiring checks: every tensor after it would be reported again.
    """
    ensemble = configs[name]
    problems: list[str] = []
    ens_inputs, ens_outputs = tensors_of(ensemble)
    steps = list(ensemble.ensemble_scheduling.step)
    if not steps:
        return ["platform 'ensemble' without ensemble_scheduling steps"]
    absent = [(n, s.model_name) for n, s in enumerate(steps, start=1) if s.model_name not in configs]
    if absent:
        return [
            f"step {number} names model '{model}', which is not in the repository"
            for number, model in absent
            if model not in set(unreadable)
        ]
    for tensor in [*ens_inputs.values(), *ens_outputs.values()]:
        if tensor.HasField("reshape"):  # Triton then takes the reshape as the ensemble tensor's shape
            problems.append(
                f"'{tensor.name}' declares a reshape, which an ensemble cannot use: Triton compares its reshaped "
                f"shape {list(full_shape(ensemble, tensor, in_model=True))} with the steps' served shapes; "
                "declare the dims alone"
            )
    # Ensemble tensor -> (dtype, shape, where it comes from); inputs first, then every step output.
    available = {n: (i.data_type, full_shape(ensemble, i), f"ensemble input '{n}'") for n, i in ens_inputs.items()}
    for step in steps:
        model = configs[step.model_name]
        _, outputs = tensors_of(model)
        for model_output, tensor in step.output_map.items():
            if model_output not in outputs:
                continue
            where = f"{step.model_name} output '{model_output}'"
            if tensor in available:
                problems.append(f"tensor '{tensor}' is produced twice ({available[tensor][2]} and {where})")
                continue
            out = outputs[model_output]
            available[tensor] = (out.data_type, full_shape(model, out), where)
    for number, step in enumerate(steps, start=1):
        label = f"step {number} ({step.model_name})"
        model = configs[step.model_name]
        if model.platform == "ensemble" and step.model_name == name:
            problems.append(f"{label}: an ensemble cannot call itself")
            continue
        if ensemble.max_batch_size > 0 and model.max_batch_size < ensemble.max_batch_size:
            problems.append(
                f"{label}: max_batch_size {model.max_batch_size} is below the ensemble's {ensemble.max_batch_size}"
            )
        inputs, outputs = tensors_of(model)
        for model_input in inputs:
            if model_input not in step.input_map and not inputs[model_input].optional:
                problems.append(f"{label}: input '{model_input}' is not fed (no input_map entry)")
        for model_input, tensor in step.input_map.items():
            if model_input not in inputs:
                problems.append(
                    f"{label}: input_map key '{model_input}' is not an input of '{step.model_name}' "
                    f"(its inputs: {_names(inputs)})"
                )
                continue
            if tensor not in available:
                problems.append(
                    f"{label}: input '{model_input}' reads tensor '{tensor}', which is neither an ensemble "
                    "input nor any step's output"
                )
                continue
            dtype, shape, source = available[tensor]
            wanted = inputs[model_input]
            if dtype != wanted.data_type:
                problems.append(
                    f"{label}: input '{model_input}' expects {dtype_name(wanted.data_type)}, "
                    f"tensor '{tensor}' ({source}) is {dtype_name(dtype)}"
                )
            elif not shapes_compatible(shape, full_shape(model, wanted)):
                problems.append(
                    f"{label}: input '{model_input}' expects shape {list(full_shape(model, wanted))}, "
                    f"tensor '{tensor}' ({source}) has {list(shape)}"
                )
        for model_output in step.output_map:
            if model_output not in outputs:
                problems.append(
                    f"{label}: output_map key '{model_output}' is not an output of '{step.model_name}' "
                    f"(its outputs: {_names(outputs)})"
                )
    for out_name, out in ens_outputs.items():
        if out_name not in available or out_name in ens_inputs:
            problems.append(f"output '{out_name}' is not produced by any step")
            continue
        dtype, shape, source = available[out_name]
        if dtype != out.data_type:
            problems.append(
                f"output '{out_name}' is declared {dtype_name(out.data_type)}, {source} is {dtype_name(dtype)}"
            )
        elif not shapes_compatible(shape, full_shape(ensemble, out)):
            problems.append(
                f"output '{out_name}' is declared with shape {list(full_shape(ensemble, out))}, "
                f"{source} has {list(shape)}"
            )
    return problems


# -- DALI -------------------------------------------------------------------------------------
@contextlib.contextmanager
def _imported(path: Path, module_name: str) -> Iterator[ModuleType]:
    """``path`` imported as ``module_name`` (the DALI runner's loader), removed from ``sys.modules`` afterwards."""
    try:
        yield load_pipeline_module(path, module_name)
    finally:
        sys.modules.pop(module_name, None)


def external_source_names(pipeline) -> list[str]:
    """Names of a (serialized, hence graph-built) pipeline's ``fn.external_source`` operators."""
    from nvidia.dali.external_source import ExternalSource

    return [op.name for op in getattr(pipeline, "_ops", []) if isinstance(getattr(op, "_op", None), ExternalSource)]


def check_dali(name: str, config: ModelConfig, model_dir: Path) -> list[str]:
    """Each version's dali.py: imports, autoserializes (on the CPU), external sources = inputs."""
    problems = []
    filename = config.default_model_filename or DALI_PIPELINE_FILENAME
    for version in version_dirs(model_dir):
        path = version / filename
        where = f"{version.name}/{filename}"
        if not path.is_file() or not filename.endswith(".py"):
            continue
        try:
            with _imported(path, f"_triton_vision_check_{name}_{version.name}") as module:
                try:
                    pipeline_def = find_autoserialized(module, where)
                except ModelFileError as exc:
                    problems.append(str(exc))
                    continue
                # What the DALI backend does at load time (nvidia.dali._utils.autoserialize), on the
                # CPU here: device_id=None, so the "mixed" decoder path is not built.
                pipeline = pipeline_def(device_id=None, batch_size=max(config.max_batch_size, 1))
                with tempfile.TemporaryDirectory() as tmp:
                    pipeline.serialize(filename=str(Path(tmp) / "model.dali"))
        except Exception as exc:  # noqa: BLE001 - user code: any failure is a finding
            problems.append(f"{where} does not import and serialize: {type(exc).__name__}: {exc}".splitlines()[0])
            continue
        sources = external_source_names(pipeline)
        inputs = [i.name for i in config.input]
        for missing in (n for n in inputs if n not in sources):
            problems.append(
                f"input '{missing}' has no fn.external_source named '{missing}' in {where} "
                f"(its external sources: {_names(sources)})"
            )
        for extra in (n for n in sources if n not in inputs):
            problems.append(f"{where}: fn.external_source '{extra}' is not a config input (inputs: {_names(inputs)})")
        outputs = [o.name for o in config.output]
        if pipeline.num_outputs != len(outputs):
            problems.append(
                f"{where} returns {pipeline.num_outputs} outputs, the config declares {len(outputs)} "
                f"({_names(outputs)})"
            )
    return problems


# -- ONNX -------------------------------------------------------------------------------------
def _onnx_to_triton() -> dict[int, int]:
    from onnx import TensorProto as T

    c = model_config_pb2
    return {
        T.BOOL: c.TYPE_BOOL,
        T.UINT8: c.TYPE_UINT8,
        T.UINT16: c.TYPE_UINT16,
        T.UINT32: c.TYPE_UINT32,
        T.UINT64: c.TYPE_UINT64,
        T.INT8: c.TYPE_INT8,
        T.INT16: c.TYPE_INT16,
        T.INT32: c.TYPE_INT32,
        T.INT64: c.TYPE_INT64,
        T.FLOAT16: c.TYPE_FP16,
        T.FLOAT: c.TYPE_FP32,
        T.DOUBLE: c.TYPE_FP64,
        T.STRING: c.TYPE_STRING,
        T.BFLOAT16: c.TYPE_BF16,
    }


def onnx_shape(value_info) -> tuple[int, ...]:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)


def check_onnx(name: str, config: ModelConfig, model_dir: Path) -> list[str]:
    """Present ONNX files against the config: tensor names, dtypes, ranks and fixed dimensions."""
    import onnx
    from onnx import TensorProto

    problems = []
    to_triton = _onnx_to_triton()
    filename = config.default_model_filename or ONNX_MODEL_FILENAME
    for version in version_dirs(model_dir):
        path = version / filename
        where = f"{version.name}/{filename}"
        if not path.is_file():
            continue
        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception as exc:  # noqa: BLE001 - a corrupt file is a finding
            problems.append(f"{where} is not a readable ONNX file: {type(exc).__name__}: {exc}".splitlines()[0])
            continue
        initialisers = {init.name for init in graph.initializer}
        for kind, declared, actual in (
            ("input", list(config.input), [v for v in graph.input if v.name not in initialisers]),
            ("output", list(config.output), list(graph.output)),
        ):
            by_name = {v.name: v for v in actual}
            for tensor in declared:
                value = by_name.get(tensor.name)
                if value is None:
                    problems.append(f"{kind} '{tensor.name}' is not in {where} (the file's {kind}s: {_names(by_name)})")
                    continue
                elem = value.type.tensor_type.elem_type
                found_dtype = to_triton.get(elem)
                if found_dtype != tensor.data_type:
                    problems.append(
                        f"{kind} '{tensor.name}': the config says {dtype_name(tensor.data_type)}, "
                        f"{where} has {TensorProto.DataType.Name(elem)}"
                    )
                wanted = full_shape(config, tensor, in_model=True)
                shape = onnx_shape(value)
                if len(shape) != len(wanted):
                    problems.append(
                        f"{kind} '{tensor.name}': the config needs rank {len(wanted)} {list(wanted)}, "
                        f"{where} has rank {len(shape)} {list(shape)}"
                    )
                elif not shapes_compatible(tuple(-1 if d == 0 else d for d in shape), wanted):
                    problems.append(
                        f"{kind} '{tensor.name}': the config needs shape {list(wanted)}, {where} has {list(shape)}"
                    )
            if kind == "input":
                for extra in sorted(set(by_name) - {t.name for t in declared}):
                    problems.append(f"{where} has input '{extra}', which the config does not declare")
    return problems


# -- the repository ---------------------------------------------------------------------------
def check_postprocess(name: str, config: ModelConfig, model_dir: Path) -> list[str]:
    """A post-processing model of this project set up from its config as Triton would set it up."""
    from google.protobuf import json_format

    from triton_vision_models.errors import ConfigError
    from triton_vision_models.model_config import ModelConfig as RunnerConfig

    for version in version_dirs(model_dir):
        source = version / (config.default_model_filename or PYTHON_MODEL_FILENAME)
        found = RUNNER_SOURCE.search(source.read_text(encoding="utf-8")) if source.is_file() else None
        if found is None or found.group(1) not in POSTPROCESS_MODULES:
            continue
        runner = getattr(importlib.import_module(f"triton_vision_models.{found.group(1)}"), found.group(2), None)
        if runner is None:
            module = f"triton_vision_models.{found.group(1)}"
            return [f"{version.name}/{source.name} names {found.group(2)}, which {module} lacks"]
        args = {
            "model_config": json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)),
            "model_repository": str(model_dir),
            "model_version": version.name,
        }
        try:
            runner.from_config(RunnerConfig.from_triton_args(args))
        except ConfigError as exc:
            return [f"its post-processing cannot start from its config: {exc}"]
    return []


def check_repository(repository: Path, models: Iterable[str] | None = None) -> Report:
    """Check every model of ``repository`` (or only ``models``; the others are read for wiring)."""
    report = Report(repository=repository)
    repo = ModelRepository.load(repository)
    configs = repo.configs
    parse_problems = [Finding(name, reason) for name, reason in sorted(repo.unreadable.items())]
    selected = set(models) if models is not None else None
    unknown = sorted(selected - set(configs) - {f.model for f in parse_problems}) if selected else []
    report.problems.extend(Finding(name, "is not a model of the repository") for name in unknown)
    report.problems.extend(f for f in parse_problems if selected is None or f.model in selected)
    if selected is None and not repo.ensembles:
        held = f"{len(configs)} models, none an ensemble" if configs else "no model"
        report.problems.append(
            Finding(str(repository), f"has no ensemble ({held}): a client would have nothing to call")
        )
    for name, config in sorted(configs.items()):
        if selected is not None and name not in selected:
            continue
        report.models.append(name)
        problems, notes = check_model_files(name, config, repository)
        kind = kind_of(config)
        if kind == ENSEMBLE:
            problems += check_ensemble(name, configs, unreadable={f.model for f in parse_problems})
        elif kind == DALI:
            problems += check_dali(name, config, repository / name)
        elif kind == ONNXRUNTIME:
            problems += check_onnx(name, config, repository / name)
        elif kind == PYTHON and is_pipeline_step(config):
            problems += check_pipeline_step(name, config, configs)
        elif kind == PYTHON and not problems:
            problems += check_postprocess(name, config, repository / name)
        report.problems.extend(Finding(name, message) for message in problems)
        report.notes.extend(Finding(name, message) for message in notes)
    return report
