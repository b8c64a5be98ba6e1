"""Bounded queues: what the generator writes into every composing model, the spec keys that set it,
and serve's overrides (docs/reliability.md#bounded-queues-and-overload). The behaviour under load is
tests/integration/test_overload.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import triton_vision_contract as contract
from tests.conftest import MODEL_REPOSITORY
from tests.support import format_models as fs
from tests.support.modelconfigs import load_config
from tests.unit.authoring.test_ensemble_spec import refusal, spec
from triton_vision_authoring.add_model.add_model import add_model
from triton_vision_authoring.add_model.keys import DEFAULT_MAX_QUEUE_SIZE, DEFAULT_QUEUE_TIMEOUT_MS
from triton_vision_serving.queues import QueueBounds

CONFIGS = {p.parent.name: load_config(p.parent) for p in MODEL_REPOSITORY.glob("*/config.pbtxt")}
BATCHED = sorted(name for name, config in CONFIGS.items() if config.platform != "ensemble" and config.max_batch_size)


# A model of seconds per image on a CPU (the detector, the segmenter and their steps) waits up to 30 s in
# a queue of 8; the others up to 2 s in a queue of 32 (the defaults; docs/performance.md).
HEAVY = {"detection_preprocess", "faster_rcnn", "detection_postprocess"} | {
    "segmentation_preprocess",
    "fcn_resnet50",
    "segmentation_postprocess",
}


def expected_queue(name: str) -> tuple[int, int]:
    if name in HEAVY:
        return 8, 30_000_000
    assert (DEFAULT_MAX_QUEUE_SIZE, DEFAULT_QUEUE_TIMEOUT_MS) == (32, 2000)
    return 32, 2_000_000


def test_every_batched_composing_model_of_the_repository_has_the_bounded_queue_and_the_probe_priority():
    assert len(BATCHED) == 10  # image_guard + 3 ensembles x (preprocess, model, postprocess)
    for name in BATCHED:
        batching = CONFIGS[name].dynamic_batching
        assert batching.max_queue_delay_microseconds == 0, name
        assert (batching.priority_levels, batching.default_priority_level) == (
            contract.PRIORITY_LEVELS,
            contract.DEFAULT_PRIORITY,
        ), name
        policy = batching.default_queue_policy
        assert (policy.max_queue_size, policy.default_timeout_microseconds) == expected_queue(name), name
        assert policy.timeout_action == policy.REJECT and policy.allow_timeout_override, name
        probes = batching.priority_queue_policy[contract.PROBE_PRIORITY]
        assert probes.max_queue_size == 8 and probes.default_timeout_microseconds == 0, name


def test_the_probe_priority_is_served_before_the_default_one():
    # Triton serves priority level 1 first: the lower number is the higher priority.
    assert 1 <= contract.PROBE_PRIORITY < contract.DEFAULT_PRIORITY <= contract.PRIORITY_LEVELS


def test_the_spec_keys_set_the_queue_of_each_generated_model(tmp_path):
    repository = tmp_path / "repo"
    repository.mkdir()
    path = fs.write_format_spec(tmp_path / "specs", "yolo", max_queue_size=5, queue_timeout_ms=0)
    result = add_model(path, repository)
    steps = [model for model in result.written if load_config(repository / model).platform != "ensemble"]
    assert steps == ["yolo_preprocess", "yolo_model", "yolo_postprocess"]  # ensembles have no queue
    for model in steps:
        policy = load_config(repository / model).dynamic_batching.default_queue_policy
        assert (policy.max_queue_size, policy.default_timeout_microseconds) == (5, 0), model


def test_a_model_taking_one_image_per_request_gets_a_bounded_queue_too(tmp_path):
    (tmp_path / "repo").mkdir()
    result = add_model(fs.write_format_spec(tmp_path / "specs", "tv"), tmp_path / "repo")
    assert result.max_batch_size == 1
    config = load_config(tmp_path / "repo" / "tv_model")
    assert config.dynamic_batching.default_queue_policy.max_queue_size == DEFAULT_MAX_QUEUE_SIZE


def test_queue_keys_parse_with_their_defaults_and_refuse_negative_numbers():
    assert (spec().queue.max_size, spec().queue.timeout_ms) == (32, 2000)
    assert spec(top={"max_queue_size": 0, "queue_timeout_ms": 500}).queue == type(spec().queue)(0, 500)
    assert refusal(top={"max_queue_size": -1}) == "my.toml: 'max_queue_size' must be a whole number >= 0, got -1"
    assert "'queue_timeout_ms' must be a whole number of milliseconds >= 0, got 1.5" in refusal(
        top={"queue_timeout_ms": 1.5}
    )


# -- serve --max-queue-size / --queue-timeout-ms ---------------------------------------------------------------
def override(bounds: QueueBounds, model: str) -> dict | None:
    text = bounds.config_json(MODEL_REPOSITORY / model)
    return None if text is None else json.loads(text)


def test_serve_overrides_the_default_prioritys_queue_and_keeps_the_rest_of_the_config():
    config = override(QueueBounds(max_size=4, timeout_ms=500), "resnet18")
    assert config is not None and config["name"] == "resnet18"
    batching = config["dynamic_batching"]
    assert batching["default_queue_policy"]["max_queue_size"] == 4
    assert int(batching["default_queue_policy"]["default_timeout_microseconds"]) == 500_000
    assert batching["priority_queue_policy"]["1"]["max_queue_size"] == 8  # the probes' queue stays
    assert [i["name"] for i in config["input"]] == ["data"]
    assert config["instance_group"] == [{"count": load_config(MODEL_REPOSITORY / "resnet18").instance_group[0].count}]


def test_serve_changes_nothing_without_overrides_or_without_a_queue():
    assert override(QueueBounds(), "resnet18") is None
    assert override(QueueBounds(max_size=4), contract.CLASSIFICATION) is None  # an ensemble has no queue
    assert override(QueueBounds(max_size=4), contract.MODEL_INFO) is None  # no dynamic batcher
    only_size = override(QueueBounds(max_size=0), "image_guard")
    assert only_size is not None
    policy = only_size["dynamic_batching"]["default_queue_policy"]
    assert "max_queue_size" not in policy  # 0, proto3's default: no bound
    assert int(policy["default_timeout_microseconds"]) == 2_000_000  # the config's, untouched


def test_serve_refuses_a_negative_bound_as_a_usage_error(tmp_path: Path):
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "triton_vision_cli", "serve", "--max-queue-size", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "argument --max-queue-size: expected a whole number >= 0, got -1" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("bounds", "words"),
    [
        (QueueBounds(4, 500), "at most 4 waiting requests, a wait limit of 0.5 s"),
        (QueueBounds(0, 0), "no bound on waiting requests, no wait limit"),
    ],
)
def test_serve_says_which_bounds_it_set(bounds, words):
    assert bounds.describe() == words
