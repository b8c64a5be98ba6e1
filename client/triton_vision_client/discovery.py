"""What a server's ensembles are: name, task, images per request, readiness, stand-in models.

Pure functions over what Triton answers (a model's config as JSON, ``model_info``'s "sources");
:meth:`VisionClient.ensembles` asks the server and calls them. No ensemble name is special: the
task comes from the output names (``contract.task_of``), the batch size from the config.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import triton_vision_contract as contract

STAND_IN = "stand-in"  # model_info's "kind" of a random-weight model
# The command that calls each task's ensembles.
COMMANDS = contract.TASK_COMMANDS


@dataclass(frozen=True)
class EnsembleConfig:
    """The parts of an ensemble's config the client needs."""

    name: str
    task: str | None  # a contract task, or None: its outputs are no task's
    max_batch_size: int
    steps: tuple[str, ...]  # the models its steps name, in order
    outputs: tuple[str, ...] = ()
    classes: int | None = None  # a classification ensemble's class count, where a step's config says it
    fused: bool = False  # served fused (serve's): its steps run inside its own model, not as models

    @classmethod
    def from_json(cls, name: str, config: Mapping[str, Any]) -> EnsembleConfig:
        """From Triton's config JSON (HTTP's answer, or gRPC's ``{"config": ...}``)."""
        body = config.get("config", config)
        outputs = [str(output.get("name", "")) for output in body.get("output", [])]
        steps = contract.ensemble_steps(body)
        return cls(
            name=str(body.get("name") or name),
            task=contract.task_of(outputs),
            max_batch_size=int(body.get("max_batch_size", 0) or 0),
            steps=tuple(dict.fromkeys(step for step in steps if step)),
            outputs=tuple(outputs),
            fused=body.get("backend") == contract.FUSED_BACKEND,
        )

    def with_nested(self, config_of: Callable[[str], Mapping[str, Any] | None]) -> EnsembleConfig:
        """Its steps with each nested ensemble's steps after it (a generated ensemble's cached
        ``NAME_infer`` runs the guard, the preprocessing and the model); ``config_of(model)`` is the
        server's config JSON of a step (None when it has none). A classification ensemble also
        gets its class count (:func:`class_count`)."""
        asked: dict[str, Mapping[str, Any] | None] = {}

        def remembered(model: str) -> Mapping[str, Any] | None:
            if model not in asked:
                asked[model] = config_of(model)
            return asked[model]

        steps = nested_steps(self.steps, remembered, {self.name})
        classes = class_count([asked[step] for step in steps if asked.get(step)])
        return replace(self, steps=steps, classes=classes if self.task == contract.CLASSIFICATION else None)


def class_count(step_configs: Iterable[Mapping[str, Any] | None]) -> int | None:
    """The class count of a classification ensemble from its steps' configs: the step that answers
    the task's outputs (the postprocessing) takes one input of fixed dims, the scores of every class
    (None when no step says so)."""
    for config in step_configs:
        body = (config or {}).get("config", config or {})
        outputs = [str(output.get("name", "")) for output in body.get("output", [])]
        inputs = body.get("input", [])
        if contract.is_ensemble_config(body) or contract.task_of(outputs) != contract.CLASSIFICATION:
            continue
        dims = [int(dim) for dim in inputs[0].get("dims", [])] if len(inputs) == 1 else []
        if dims and min(dims) > 0:
            return math.prod(dims)
    return None


def nested_steps(
    steps: tuple[str, ...], config_of: Callable[[str], Mapping[str, Any] | None], seen: set[str]
) -> tuple[str, ...]:
    found: list[str] = []
    for step in steps:
        found.append(step)
        config = config_of(step) if step not in seen else None
        body = config.get("config", config) if config is not None else {}
        if contract.is_ensemble_config(body):
            inner = EnsembleConfig.from_json(step, body).steps
            found.extend(nested_steps(inner, config_of, seen | {step}))
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class EnsembleInfo:
    """One ensemble of a server's repository, as :meth:`VisionClient.ensembles` reports it."""

    name: str  # as the server serves it (with the client's model prefix, if any)
    task: str | None  # "classification", "detection", "segmentation"; None when unknown (not loaded)
    max_batch_size: int | None  # images per request; None when the server cannot say (not loaded)
    ready: bool  # the server says it can answer now
    stand_in: tuple[str, ...] = ()  # its step models that are random-weight stand-ins
    steps: tuple[str, ...] = ()  # the models its steps name (empty when not loaded)
    fused: bool = False  # its steps run inside its own model (serve's fused ensembles)

    @property
    def timed(self) -> tuple[str, ...]:
        """The models whose statistics say where its time goes: its steps, or itself when fused."""
        return (self.name,) if self.fused else self.steps

    @property
    def state(self) -> str:
        return "ready" if self.ready else "not ready"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "max_batch_size": self.max_batch_size,
            "ready": self.ready,
            "stand_in": list(self.stand_in),
            "steps": list(self.steps),
        }


def stand_ins(models: tuple[str, ...], sources: Mapping[str, Mapping[str, str]]) -> tuple[str, ...]:
    """The models that ``model_info``'s "sources" answer calls stand-ins."""
    return tuple(name for name in models if sources.get(name, {}).get("kind") == STAND_IN)


def ensemble_info(
    name: str, config: EnsembleConfig | None, ready: bool, sources: Mapping[str, Mapping[str, str]]
) -> EnsembleInfo:
    """An ensemble's info from its config (None: the server has none loaded), readiness and sources."""
    if config is None:
        return EnsembleInfo(name, None, None, ready)
    return EnsembleInfo(
        name, config.task, config.max_batch_size, ready, stand_ins(config.steps, sources), config.steps, config.fused
    )


def stand_in_warning(model: str) -> str:
    return f"WARNING: the served '{model}' is a stand-in with random weights: its answers are meaningless"


def mismatch(model: str, config: EnsembleConfig, task: str) -> str:
    """Why ``model`` cannot answer a call of ``task``."""
    if config.task is None:
        found = ", ".join(config.outputs) or "none"
        return (
            f"the '{model}' model does not answer with any task's outputs (it has {found}): "
            f"a {task} ensemble answers {', '.join(contract.TASK_OUTPUTS[task])}"
        )
    return (
        f"the '{model}' ensemble answers {config.task}, not {task}: "
        f"use `triton-vision {COMMANDS[config.task]}` (or --ensemble NAME of a {task} ensemble)"
    )


def model_prefixes(names: Iterable[str]) -> list[str]:
    """The model prefixes among a server's model names (``""``: none): what comes before each
    model_info (an exported repository renames its own), else before a built-in ensemble's name."""
    names = list(names)
    found = [name[: -len(contract.MODEL_INFO)] for name in names if name.endswith(contract.MODEL_INFO)]
    if not found:
        found = [name[: -len(task)] for name in names for task in contract.BUILT_IN_ENSEMBLES if name.endswith(task)]
    return list(dict.fromkeys(found))


def prefix_advice(found: Mapping[str, Sequence[str]]) -> str | None:
    """What to give to call the ensembles a server has under other model prefixes ({prefix:
    ensembles}), or None when there are none."""
    if len(found) == 1:
        ((prefix, names),) = found.items()
        if not prefix:
            return f"it has {', '.join(names)}, without a prefix: leave out --model-prefix"
        return (
            f"it has {', '.join(names)}: give --model-prefix {prefix} "
            f"(a repository exported with `export-repo --prefix {prefix}`)"
        )
    parts = [
        f"{', '.join(names)} ({f'--model-prefix {prefix}' if prefix else 'no --model-prefix'})"
        for prefix, names in found.items()
    ]
    return f"it has ensembles under other prefixes: {'; '.join(parts)}" if parts else None
