"""The UI's discovery of ensembles from their configs, and the guard's byte limit (pure code)."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from tests.conftest import MODEL_REPOSITORY
from tests.modelconfigs import load_config
from triton_vision_ui.discovery import EnsembleInfo, from_config, guard_max_bytes


def config_json(name: str) -> dict:
    """The model's config.pbtxt as Triton's JSON answer has it."""
    return json_format.MessageToDict(load_config(MODEL_REPOSITORY / name), preserving_proto_field_name=True)


@pytest.mark.parametrize("ensemble", ["classification", "detection", "segmentation"])
def test_each_built_in_ensemble_gets_its_own_task_and_its_steps_in_order(ensemble):
    config = config_json(ensemble)
    info = from_config(ensemble, config, True, {})
    assert info.task == ensemble
    assert info.steps[0] == "image_guard" and len(info.steps) == 4
    assert info.steps == tuple(step["model_name"] for step in config["ensemble_scheduling"]["step"])
    assert info.max_batch_size == int(config["max_batch_size"])


def test_stand_in_steps_are_named_from_model_infos_sources():
    sources = {"resnet18": {"kind": "stand-in"}, "image_guard": {"kind": "local"}}
    info = from_config("classification", config_json("classification"), True, sources)
    assert info.stand_in == ("resnet18",)
    assert from_config("classification", config_json("classification"), True, {}).stand_in == ()


def test_a_model_with_no_tasks_outputs_has_no_task_and_an_unloaded_one_no_config():
    assert from_config("image_guard", config_json("image_guard"), True, {}).task is None
    assert from_config("gone", None, False, {}) == EnsembleInfo("gone", None, None, False)


def test_the_guard_limit_is_the_image_guard_configs_32_mib():
    steps = config_json("classification")["ensemble_scheduling"]["step"]
    configs = {step["model_name"]: config_json(step["model_name"]) for step in steps}
    assert guard_max_bytes(configs) == ("image_guard", 32 * 1024 * 1024)


def test_the_smallest_declared_limit_wins_and_none_without_one():
    def declaring(value: str) -> dict:
        return {"parameters": {"max_bytes": {"string_value": value}}}

    assert guard_max_bytes({"a": declaring("900"), "b": declaring("100"), "c": {}}) == ("b", 100)
    assert guard_max_bytes({"a": {}, "b": declaring("lots")}) is None
