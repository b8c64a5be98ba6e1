"""Read the repository's config.pbtxt files with Triton's own protobuf (the project's one reader)."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import json_format

from triton_vision_models.repository import load_config
from triton_vision_models.spec import ModelSpec

__all__ = ["load_config", "spec_for"]


def spec_for(model_dir: Path, version: str = "1", **args: str) -> ModelSpec:
    """The ModelSpec a Python model in ``model_dir`` gets from Triton's ``args``."""
    config = json_format.MessageToDict(load_config(model_dir), preserving_proto_field_name=True)
    return ModelSpec.from_triton_args(
        {
            "model_config": json.dumps(config),
            "model_repository": str(model_dir),
            "model_version": version,
            "model_instance_kind": "CPU",
            **args,
        }
    )
