"""An ensemble run in one process: its steps' own runners, called in step order.

The local runtime serves each composing model of an ensemble (guard, DALI preprocessing, ONNX
Runtime model, post-processing) as a Python stub process of its own, so a request crosses four
process boundaries, each with a shared-memory copy and two wake-ups, and waits in four queues. In
the NGC image DALI and ONNX Runtime are C++ backends inside tritonserver. A *fused* ensemble is a
Python model that loads the runner of every step (the same ``TritonPythonModel`` classes the steps
are served with, through their ``load_runner``) and passes each request's tensors from step to step
by the ensemble's ``input_map``/``output_map``: one process, one queue at the entrance, the same
answers and the same per-request errors.

Its config names the ensemble's config file (``ensemble_config``) and may override a setting of
every step of one kind: ``parameters { key: "dali.num_threads" value: { string_value: "1" } }``.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import json_format

from . import repository as repo
from .errors import ConfigError
from .imports import import_file
from .model_config import ModelConfig, RequestData, check_input

Runner = Callable[[Sequence[RequestData]], Sequence["Mapping[str, np.ndarray] | Exception"]]

ENSEMBLE_CONFIG_KEY = "ensemble_config"  # its value: repo.ENSEMBLE_CONFIG_FILE
BACKENDS_PACKAGE = "triton_vision_backends"  # the Python-based backends (backends/<kind>/model.py)


@dataclass(frozen=True)
class FusedStep:
    """One composing model: its runner and how its tensors map to the ensemble's."""

    config: ModelConfig
    runner: Runner
    validate_inputs: bool
    input_map: Mapping[str, str]  # the step's input -> the ensemble's tensor
    output_map: Mapping[str, str]  # the step's output -> the ensemble's tensor
    within: tuple[str, ...] = ()  # the ensembles it runs in, outermost first (for error messages)


def implementation(model_dir: Path, version: str, kind: str, config: Any) -> Path:
    """The ``model.py`` that serves a step: its own (Python models) or its backend's."""
    if kind == repo.PYTHON:
        return model_dir / version / (config.default_model_filename or "model.py")
    source = importlib.resources.files(BACKENDS_PACKAGE) / kind / "model.py"
    return Path(str(source))


def load_model_class(path: Path, module_name: str) -> Any:
    module = import_file(path, module_name, "model file", ConfigError)
    model_class = getattr(module, "TritonPythonModel", None)
    if model_class is None or not hasattr(model_class, "load_runner"):
        raise ConfigError(f"{path} is not a triton-vision model (no TritonPythonModel.load_runner)")
    return model_class


def latest_version(model_dir: Path, requested: int) -> str:
    if requested > 0:
        return str(requested)
    versions = repo.version_dirs(model_dir)
    if not versions:
        raise ConfigError(f"model '{model_dir.name}' has no version folder")
    return versions[-1].name


def step_args(model_dir: Path, version: str, config: Any, overrides: Mapping[str, str]) -> dict[str, str]:
    """What Triton passes a Python model's ``initialize``, for a step loaded in this process."""
    as_json = json.loads(json_format.MessageToJson(config, preserving_proto_field_name=True))
    parameters = as_json.setdefault("parameters", {})
    for key, value in overrides.items():
        parameters[key] = {"string_value": value}
    return {
        "model_config": json.dumps(as_json),
        "model_name": config.name,
        "model_repository": str(model_dir),
        "model_version": version,
        "model_instance_kind": "CPU",
        "model_instance_name": f"{config.name}_fused",
    }


def load_steps(
    root: Path, ensemble: Any, overrides: Mapping[str, Mapping[str, str]], seen: tuple[str, ...] = ()
) -> list[FusedStep]:
    """The leaf steps of ``ensemble`` (nested ensembles expanded), each with its runner."""
    steps: list[FusedStep] = []
    for step in ensemble.ensemble_scheduling.step:
        name = step.model_name
        if name in seen:
            raise ConfigError(f"ensemble '{ensemble.name}': step '{name}' runs itself")
        model_dir = root / name
        config = repo.load_model_config(model_dir)
        kind = repo.kind_of(config)
        if kind == repo.ENSEMBLE:
            inner = load_steps(root, config, overrides, (*seen, ensemble.name))
            inner = [replace(s, within=(ensemble.name, *s.within)) for s in inner]
            steps.extend(renamed(inner, dict(step.input_map), dict(step.output_map), name))
            continue
        version = latest_version(model_dir, step.model_version)
        model_class = load_model_class(
            implementation(model_dir, version, kind, config), f"triton_vision_fused_{ensemble.name}_{name}"
        )
        args = step_args(model_dir, version, config, overrides.get(kind, {}))
        model_config = ModelConfig.from_triton_args(args)
        steps.append(
            FusedStep(
                config=model_config,
                runner=model_class.load_runner(model_config),
                validate_inputs=bool(getattr(model_class, "validate_inputs", True)),
                input_map=dict(step.input_map),
                output_map=dict(step.output_map),
                within=(ensemble.name,),
            )
        )
    return steps


def renamed(
    inner: list[FusedStep], inputs: Mapping[str, str], outputs: Mapping[str, str], name: str
) -> list[FusedStep]:
    """A nested ensemble's steps, its tensor names turned into the outer ensemble's: its inputs and
    outputs by the outer step's maps, its internal tensors prefixed with its name."""

    def outer(tensor: str) -> str:
        if tensor in inputs:
            return inputs[tensor]
        if tensor in outputs:
            return outputs[tensor]
        return f"{name}/{tensor}"

    return [
        FusedStep(
            config=s.config,
            runner=s.runner,
            validate_inputs=s.validate_inputs,
            input_map={k: outer(v) for k, v in s.input_map.items()},
            output_map={k: outer(v) for k, v in s.output_map.items()},
            within=s.within,
        )
        for s in inner
    ]


def run_isolated(step: FusedStep, batch: list[RequestData]) -> list[Mapping[str, np.ndarray] | Exception]:
    """The step's runner on a batch; a batch that fails as a whole is run again request by request,
    so one bad request fails alone (as the adapter does for a served model)."""
    try:
        return list(step.runner(batch))
    except Exception as exc:  # noqa: BLE001 - every failure becomes that request's answer
        if len(batch) == 1:
            return [exc]
        return [run_isolated(step, [data])[0] for data in batch]


class FusedEnsemble:
    """The runner of a fused ensemble (see the module docstring)."""

    def __init__(self, name: str, steps: list[FusedStep], outputs: Sequence[str]) -> None:
        self.name = name
        self.steps = steps
        self.outputs = tuple(outputs)

    @classmethod
    def from_config(cls, config: ModelConfig) -> FusedEnsemble:
        path = config.repository_dir / config.setting(ENSEMBLE_CONFIG_KEY, repo.ENSEMBLE_CONFIG_FILE)
        try:
            ensemble = repo.parse_config(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"model '{config.name}': cannot read its ensemble config {path}: {exc}") from None
        overrides: dict[str, dict[str, str]] = {}
        for key, value in config.parameters.items():
            kind, dot, setting = key.partition(".")
            if dot and kind in (repo.PYTHON, repo.DALI, repo.ONNXRUNTIME):
                overrides.setdefault(kind, {})[setting] = value
        steps = load_steps(config.repository_dir.parent, ensemble, overrides)
        return cls(config.name, steps, [o.name for o in ensemble.output])

    def __call__(self, requests: Sequence[RequestData]) -> list[Mapping[str, np.ndarray] | Exception]:
        tensors: list[dict[str, np.ndarray]] = [dict(r.inputs) for r in requests]
        results: list[Mapping[str, np.ndarray] | Exception | None] = [None] * len(requests)
        alive = list(range(len(requests)))
        for step in self.steps:
            batch: list[RequestData] = []
            running: list[int] = []
            for index in alive:
                try:
                    batch.append(self.step_request(step, tensors[index], requests[index].parameters))
                    running.append(index)
                except Exception as exc:  # noqa: BLE001 - a request that does not fit the step fails alone
                    results[index] = as_ensembles_say(exc, step.within)
            answers = run_isolated(step, batch) if batch else []
            alive = []
            for index, answer in zip(running, answers, strict=True):
                if isinstance(answer, Exception):
                    results[index] = as_ensembles_say(answer, step.within)
                    continue
                for output, tensor in step.output_map.items():
                    tensors[index][tensor] = as_declared(step.config, output, answer)
                alive.append(index)
        for index in alive:
            results[index] = {name: tensors[index][name] for name in self.outputs}
        return [r if r is not None else RuntimeError("no answer") for r in results]

    @staticmethod
    def step_request(step: FusedStep, tensors: Mapping[str, np.ndarray], parameters: Mapping[str, Any]) -> RequestData:
        inputs = {}
        for name, tensor in step.input_map.items():
            array = tensors[tensor]
            if step.validate_inputs:
                check_input(step.config, step.config.input(name), array)
            inputs[name] = array
        return RequestData(inputs=inputs, parameters=parameters)


def as_ensembles_say(exc: Exception, within: Sequence[str]) -> Exception:
    """A step's error as Triton's ensemble scheduler passes it on: ``in ensemble 'NAME', `` before the
    step's message for each ensemble it runs in (outermost first), the same kind of error (so the
    same status), so that a client reads the same words from a fused ensemble and from Triton's."""
    prefix = "".join(f"in ensemble '{name}', " for name in within)
    if not prefix:
        return exc
    try:
        wrapped = type(exc)(prefix + str(exc))
    except Exception:  # noqa: BLE001 - an exception that takes other arguments keeps its own message
        return exc
    wrapped.__cause__ = exc.__cause__
    return wrapped


def as_declared(config: ModelConfig, output: str, answer: Mapping[str, np.ndarray]) -> np.ndarray:
    """A step's output in the dtype its config declares (what Triton would pass on)."""
    array = answer[output]
    declared = config.output(output).dtype
    if declared != np.dtype(np.object_) and array.dtype != declared:
        array = array.astype(declared)
    return array
