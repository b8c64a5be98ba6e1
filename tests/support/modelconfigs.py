"""Read the repository's config.pbtxt files with Triton's own protobuf (the project's one reader)."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import json_format

from triton_vision_models.model_config import ModelConfig
from triton_vision_models.repository import load_config

__all__ = ["load_config", "config_for", "step_models"]


def step_models(repository: Path, ensemble: str, *, nested: bool = True) -> list[str]:
    """The models an ensemble's config.pbtxt names as steps, in order; a step that is an ensemble
    (a generated ensemble's cached NAME_infer) is followed by its own steps, or with ``nested=False``
    replaced by them. The tests' own reading of the configs, apart from the code under test."""
    found: list[str] = []
    for step in load_config(repository / ensemble).ensemble_scheduling.step:
        if load_config(repository / step.model_name).platform == "ensemble":
            found += ([step.model_name] if nested else []) + step_models(repository, step.model_name, nested=nested)
        else:
            found.append(step.model_name)
    return found


def config_for(model_dir: Path, version: str = "1", **args: str) -> ModelConfig:
    """The ModelConfig a Python model in ``model_dir`` gets from Triton's ``args``."""
    config = json_format.MessageToDict(load_config(model_dir), preserving_proto_field_name=True)
    return ModelConfig.from_triton_args(
        {
            "model_config": json.dumps(config),
            "model_repository": str(model_dir),
            "model_version": version,
            "model_instance_kind": "CPU",
            **args,
        }
    )
