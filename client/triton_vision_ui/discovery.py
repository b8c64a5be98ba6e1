"""Which ensembles a server has, the task of each, and the image guard's byte limit.

:func:`ensembles` has the shape of ``VisionClient.ensembles()`` (being added to the client on
another branch): once that lands, ``discovery.ensembles(client, reader)`` becomes
``client.ensembles()`` and :class:`EnsembleInfo` the client's. No name is special: the names come
from the ``model_info`` model's "ensembles" answer (the repository's ensembles, loaded or not, so
those ``add-model`` writes too), the task from the output names (``task_of``), the batch size and
the steps from the config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import triton_vision_contract as t
from triton_vision_client.client import VisionClient

from .server_info import ServerAnswerError, TritonReader

STAND_IN = "stand-in"  # model_info's "kind" of a random-weight model
GUARD_MAX_BYTES = "max_bytes"  # the image guard's parameter: the largest encoded image it accepts


@dataclass(frozen=True)
class EnsembleInfo:
    """One ensemble of the server's repository."""

    name: str  # as the server serves it (with the model prefix, if any)
    task: str | None  # a contract task; None when unknown (not loaded, or no task's outputs)
    max_batch_size: int | None  # images per request; None when the server cannot say
    ready: bool
    stand_in: tuple[str, ...] = ()  # its step models that are random-weight stand-ins
    steps: tuple[str, ...] = ()  # the models its steps name, in order (empty when not loaded)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "max_batch_size": self.max_batch_size,
            "ready": self.ready,
            "stand_in": list(self.stand_in),
            "steps": list(self.steps),
        }


def from_config(
    name: str, config: Mapping[str, Any] | None, ready: bool, sources: Mapping[str, Mapping[str, str]]
) -> EnsembleInfo:
    """An ensemble's info from its config JSON (None: the server has none loaded)."""
    if config is None:
        return EnsembleInfo(name, None, None, ready)
    outputs = [str(output.get("name", "")) for output in config.get("output", [])]
    steps = [str(step.get("model_name", "")) for step in config.get("ensemble_scheduling", {}).get("step", [])]
    unique_steps = tuple(dict.fromkeys(step for step in steps if step))
    return EnsembleInfo(
        name=name,
        task=t.task_of(outputs),
        max_batch_size=int(config.get("max_batch_size", 0) or 0),
        ready=ready,
        stand_in=tuple(step for step in unique_steps if sources.get(step, {}).get("kind") == STAND_IN),
        steps=unique_steps,
    )


def ensembles(client: VisionClient, reader: TritonReader) -> list[EnsembleInfo]:
    """Every ensemble of the server's repository (with the client's model prefix), loaded or not.

    Without a ``model_info`` model: the built-in ensembles the server has a config for. Raises
    :class:`ServerUnreachableError` when no server answers.
    """
    reader.check_live()
    listed = client.repository_ensembles()
    if listed is None:
        names = [client.model_prefix + task for task in t.TASKS]
    else:
        names = [name for name in listed if name.startswith(client.model_prefix)]
    sources = client.model_sources()
    found = []
    for name in names:
        try:
            config: dict[str, Any] | None = reader.config(name)
        except ServerAnswerError:
            if listed is None:
                continue  # a built-in name this server has never heard of
            config = None
        found.append(from_config(name, config, reader.ready(name), sources))
    return found


def guard_max_bytes(step_configs: Mapping[str, Mapping[str, Any]]) -> tuple[str, int] | None:
    """The step with the smallest ``max_bytes`` parameter among an ensemble's step configs, and
    that limit (None: no step declares one)."""
    limits = []
    for step, config in step_configs.items():
        value = config.get("parameters", {}).get(GUARD_MAX_BYTES, {}).get("string_value")
        try:
            limits.append((int(str(value)), step))
        except ValueError:
            continue
    if not limits:
        return None
    max_bytes, step = min(limits)
    return step, max_bytes
