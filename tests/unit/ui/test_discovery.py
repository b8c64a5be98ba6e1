"""The guard's byte limit the UI refuses uploads above (pure code; discovery is the client's)."""

from __future__ import annotations

from google.protobuf import json_format

from tests.conftest import MODEL_REPOSITORY
from tests.support.modelconfigs import load_config, step_models
from triton_vision_ui.discovery import guard_max_bytes


def config_json(name: str) -> dict:
    """The model's config.pbtxt as Triton's JSON answer has it."""
    return json_format.MessageToDict(load_config(MODEL_REPOSITORY / name), preserving_proto_field_name=True)


def test_the_guard_limit_is_the_image_guard_configs_32_mib():
    configs = {step: config_json(step) for step in step_models(MODEL_REPOSITORY, "classification")}
    assert guard_max_bytes(configs) == ("image_guard", 32 * 1024 * 1024)


def test_the_smallest_declared_limit_wins_and_none_without_one():
    def declaring(value: str) -> dict:
        return {"parameters": {"max_bytes": {"string_value": value}}}

    assert guard_max_bytes({"a": declaring("900"), "b": declaring("100"), "c": {}}) == ("b", 100)
    assert guard_max_bytes({"a": {}, "b": declaring("lots")}) is None
