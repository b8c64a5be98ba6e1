"""What a server's ensembles are: name, task, images per request, readiness, stand-in models.

Pure functions over what Triton answers (a model's config as JSON, ``model_info``'s "sources");
:meth:`VisionClient.ensembles` asks the server and calls them. No ensemble name is special: the
task comes from the output names (``contract.task_of``), the batch size from the config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import triton_vision_contract as contract

STAND_IN = "stand-in"  # model_info's "kind" of a random-weight model
# The command that calls each task's ensembles.
COMMANDS = {contract.CLASSIFICATION: "classify", contract.DETECTION: "detect", contract.SEGMENTATION: "segment"}


@dataclass(frozen=True)
class EnsembleConfig:
    """The parts of an ensemble's config the client needs."""

    name: str
    task: str | None  # a contract task, or None: its outputs are no task's
    max_batch_size: int
    steps: tuple[str, ...]  # the models its steps name, in order
    outputs: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, name: str, config: Mapping[str, Any]) -> EnsembleConfig:
        """From Triton's config JSON (HTTP's answer, or gRPC's ``{"config": ...}``)."""
        body = config.get("config", config)
        outputs = [str(output.get("name", "")) for output in body.get("output", [])]
        steps = [str(step.get("model_name", "")) for step in body.get("ensemble_scheduling", {}).get("step", [])]
        return cls(
            name=str(body.get("name") or name),
            task=contract.task_of(outputs),
            max_batch_size=int(body.get("max_batch_size", 0) or 0),
            steps=tuple(dict.fromkeys(step for step in steps if step)),
            outputs=tuple(outputs),
        )

    def with_nested(self, config_of: Callable[[str], Mapping[str, Any] | None]) -> EnsembleConfig:
        """Its steps with each nested ensemble's steps after it (a generated ensemble's cached
        ``NAME_infer`` runs the guard, the preprocessing and the model); ``config_of(model)`` is the
        server's config JSON of a step (None when it has none)."""
        return replace(self, steps=nested_steps(self.steps, config_of, {self.name}))


def nested_steps(
    steps: tuple[str, ...], config_of: Callable[[str], Mapping[str, Any] | None], seen: set[str]
) -> tuple[str, ...]:
    found: list[str] = []
    for step in steps:
        found.append(step)
        config = config_of(step) if step not in seen else None
        body = config.get("config", config) if config is not None else {}
        if body.get("platform") == "ensemble":
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
    return EnsembleInfo(name, config.task, config.max_batch_size, ready, stand_ins(config.steps, sources), config.steps)


def stand_in_warning(model: str) -> str:
    return f"WARNING: the served '{model}' is a stand-in with random weights: its answers are meaningless"
