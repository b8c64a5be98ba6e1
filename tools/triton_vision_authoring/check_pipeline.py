"""``check`` of a pipeline's objects step: the models its parameters name exist and take what it sends.

The objects step (:mod:`triton_vision_models.pipeline`) calls models by name from inside Triton, so
no ensemble wiring covers those calls: this does. Its parameters are written by ``add-model`` from
the repository; a repository edited or exported since can disagree with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import triton_vision_contract as contract
from triton_vision_models.repository import ModelConfig

# Parameters of the objects step that name a model of the repository.
MODEL_PARAMETERS = ("detector_postprocess", "stage_model", "stage_postprocess")


def is_pipeline_step(config: ModelConfig) -> bool:
    return "stage_model" in config.parameters


def _setting(config: ModelConfig, key: str) -> str:
    value = config.parameters.get(key)
    return value.string_value if value is not None else ""


def _inputs(config: Any) -> dict[str, Any]:
    return {tensor.name: tensor for tensor in config.input}


def _outputs(config: Any) -> dict[str, Any]:
    return {tensor.name: tensor for tensor in config.output}


def check_pipeline_step(name: str, config: ModelConfig, configs: Mapping[str, ModelConfig]) -> list[str]:
    problems = []
    missing = [f"{key} '{_setting(config, key)}'" for key in MODEL_PARAMETERS if _setting(config, key) not in configs]
    if missing:
        return [
            f"names models the repository lacks: {', '.join(missing)} (regenerate it with `triton-vision add-model`)"
        ]
    detector = configs[_setting(config, "detector_postprocess")]
    absent = [o for o in contract.TASK_OUTPUTS[contract.DETECTION] if o not in _outputs(detector)]
    if absent:
        problems.append(f"its detector post-processing '{detector.name}' does not answer {', '.join(absent)}")
    own = {n for n in _inputs(config) if n != contract.IMAGE}
    wanted = {n for n in _inputs(detector) if n != contract.IMAGE}
    if own != wanted:
        problems.append(
            f"its inputs {sorted(own)} are not those of its detector post-processing '{detector.name}' {sorted(wanted)}"
        )
    model, post = configs[_setting(config, "stage_model")], configs[_setting(config, "stage_postprocess")]
    for key, target, tensors in (
        ("stage_input", model, _inputs(model)),
        ("stage_output", model, _outputs(model)),
        ("stage_postprocess_input", post, _inputs(post)),
    ):
        if _setting(config, key) not in tensors:
            problems.append(
                f"parameter {key} '{_setting(config, key)}' is not a tensor of '{target.name}' ({', '.join(tensors)})"
            )
    return problems
