"""Discovery without a server: Triton's config answers (as the real server gave them, over gRPC and
HTTP) read into task, batch size and steps; stand-ins; what a failed request's status means."""

from __future__ import annotations

import pytest
from tritonclient.utils import InferenceServerException

from triton_vision_client.cli import ensemble_table
from triton_vision_client.discovery import EnsembleConfig, EnsembleInfo, ensemble_info, mismatch, stand_ins
from triton_vision_client.errors import ServerUnreachableError
from triton_vision_client.jobs import REFUSED, SERVER_ERROR, TIMED_OUT, UNAVAILABLE, RequestError
from triton_vision_client.transport import request_failure

# get_model_config("classification", as_json=True) over gRPC, trimmed (dims are strings there).
GRPC_CONFIG = {
    "config": {
        "name": "tv_pets",
        "platform": "ensemble",
        "max_batch_size": 1,
        "input": [{"name": "IMAGE", "data_type": "TYPE_UINT8", "dims": ["-1"]}],
        "output": [
            {"name": "CLASS_IDS", "data_type": "TYPE_INT32", "dims": ["-1"]},
            {"name": "SCORES", "data_type": "TYPE_FP32", "dims": ["-1"]},
            {"name": "LABELS", "data_type": "TYPE_STRING", "dims": ["-1"]},
        ],
        "ensemble_scheduling": {
            "step": [
                {"model_name": "tv_image_guard", "model_version": "-1"},
                {"model_name": "tv_pets_preprocess", "model_version": "-1"},
                {"model_name": "tv_pets_model", "model_version": "-1"},
                {"model_name": "tv_pets_postprocess", "model_version": "-1"},
            ]
        },
    }
}
# get_model_config("detection") over HTTP, trimmed: the config itself, dims as numbers.
HTTP_CONFIG = {
    "name": "detection",
    "platform": "ensemble",
    "max_batch_size": 4,
    "output": [
        {"name": "BOXES", "data_type": "TYPE_FP32", "dims": [-1, 4]},
        {"name": "SCORES", "data_type": "TYPE_FP32", "dims": [-1]},
        {"name": "CLASS_IDS", "data_type": "TYPE_INT32", "dims": [-1]},
        {"name": "LABELS", "data_type": "TYPE_STRING", "dims": [-1]},
        {"name": "COUNT", "data_type": "TYPE_INT32", "dims": [1]},
    ],
    "ensemble_scheduling": {
        "step": [
            {"model_name": "image_guard", "model_version": -1, "model_namespace": ""},
            {"model_name": "detection_preprocess", "model_version": -1, "model_namespace": ""},
            {"model_name": "faster_rcnn", "model_version": -1, "model_namespace": ""},
            {"model_name": "detection_postprocess", "model_version": -1, "model_namespace": ""},
        ]
    },
}


def test_a_grpc_config_of_any_name_gives_task_batch_size_and_steps():
    config = EnsembleConfig.from_json("tv_pets", GRPC_CONFIG)
    assert (config.name, config.task, config.max_batch_size) == ("tv_pets", "classification", 1)
    assert config.steps == ("tv_image_guard", "tv_pets_preprocess", "tv_pets_model", "tv_pets_postprocess")


def test_an_http_config_gives_the_same_facts():
    config = EnsembleConfig.from_json("detection", HTTP_CONFIG)
    assert (config.task, config.max_batch_size) == ("detection", 4)
    assert config.steps[2] == "faster_rcnn"


def test_stand_ins_are_the_steps_model_info_calls_so():
    sources = {
        "faster_rcnn": {"kind": "stand-in", "origin": "random", "sha256": "0"},
        "resnet18": {"kind": "stand-in", "origin": "random", "sha256": "1"},  # another ensemble's
        "image_guard": {"kind": "download", "origin": "x", "sha256": "2"},
    }
    info = ensemble_info("detection", EnsembleConfig.from_json("detection", HTTP_CONFIG), True, sources)
    assert info == EnsembleInfo("detection", "detection", 4, True, ("faster_rcnn",), info.steps)
    assert info.as_dict()["stand_in"] == ["faster_rcnn"]
    unloaded = ensemble_info("segmentation", None, False, sources)
    assert (unloaded.task, unloaded.max_batch_size, unloaded.state) == (None, None, "not ready")


def test_the_models_table_has_a_line_per_ensemble():
    ready = EnsembleInfo("tv_pets", "classification", 1, True, ("tv_pets_model",))
    down = EnsembleInfo("tv_detection", None, None, False)
    assert ensemble_table([ready, down]) == [
        "ENSEMBLE      TASK            BATCH  STATE      STAND-IN MODELS",
        "tv_pets       classification      1  ready      tv_pets_model",
        "tv_detection  -                   -  not ready  -",
    ]


def test_a_call_of_another_task_names_the_command_to_use():
    detection = EnsembleConfig.from_json("detection", HTTP_CONFIG)
    assert mismatch("detection", detection, "classification") == (
        "the 'detection' ensemble answers detection, not classification: use `triton-vision detect` "
        "(or --ensemble NAME of a classification ensemble)"
    )
    bare = EnsembleConfig("resnet18", None, 32, (), ("resnetv15_dense0_fwd",))
    assert mismatch("resnet18", bare, "classification") == (
        "the 'resnet18' model does not answer with any task's outputs (it has resnetv15_dense0_fwd): "
        "a classification ensemble answers CLASS_IDS, SCORES, LABELS"
    )


def failure(message: str, status: str | None):
    return request_failure(
        InferenceServerException(msg=message, status=status), url="127.0.0.1:8001", protocol="grpc", timeout_s=30
    )


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ("Request for unknown model: 'classification' has no available versions", "StatusCode.NOT_FOUND"),
        ("Request for unknown model: 'classification' has no available versions", "404"),
        ("Exceeds maximum queue size", "StatusCode.UNAVAILABLE"),
        ("Exceeds maximum queue size", "503"),
        ("Request timeout expired", "StatusCode.UNAVAILABLE"),
        ("Too many requests", "429"),
        (
            "Failed to process the request(s) for model 'classification_postprocess_0_0', message: "
            "Stub process 'classification_postprocess_0_0' is not healthy.",
            "StatusCode.INTERNAL",
        ),
    ],
)
def test_what_the_server_calls_temporary_is_retried(message, status):
    error = failure(message, status)
    assert isinstance(error, RequestError) and error.reason == UNAVAILABLE and error.message.startswith(message)


@pytest.mark.parametrize("status", ["StatusCode.UNAVAILABLE", "503"])
@pytest.mark.parametrize(
    "message",
    [
        "in ensemble 'classification', [request id: <id_unknown>] Exceeds maximum queue size",
        "in ensemble 'classification', Request timeout expired",
    ],
)
def test_a_refusal_for_load_keeps_the_servers_words_and_says_what_they_mean(message, status):
    error = failure(message, status)
    assert isinstance(error, RequestError) and error.reason == UNAVAILABLE
    assert error.message.startswith(message)
    assert "the server is busy" in error.message and "max_queue_size" in error.message


@pytest.mark.parametrize(
    "message",
    [
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote "
        "host: Connection refused",
        "errors resolving nowhere.invalid:8001: [field:hostname lookup error:address lookup failed]",
    ],
)
def test_no_connection_is_no_server_not_a_temporary_error(message):
    assert isinstance(failure(message, "StatusCode.UNAVAILABLE"), ServerUnreachableError)


def test_other_failures_keep_their_reasons():
    assert failure("Request for unknown model: 'pets' is not found", "StatusCode.NOT_FOUND").reason == SERVER_ERROR
    assert failure("image 0: not a JPEG or PNG file", "StatusCode.INVALID_ARGUMENT").reason == REFUSED
    assert failure("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED").reason == TIMED_OUT
    assert isinstance(
        request_failure(ConnectionRefusedError(111, "refused"), url="h:1", protocol="http", timeout_s=1),
        ServerUnreachableError,
    )


def test_a_nested_ensembles_steps_follow_it_so_stand_ins_behind_it_are_found():
    def config(name: str, steps: list[str], platform: str = "ensemble") -> dict:
        return {
            "name": name,
            "platform": platform,
            "ensemble_scheduling": {"step": [{"model_name": step} for step in steps]},
        }

    served = {
        "classification_infer": config("classification_infer", ["image_guard", "pre", "resnet18"]),
        "classification_postprocess": config("classification_postprocess", [], platform=""),
        "image_guard": {"name": "image_guard", "backend": "python"},
        "pre": {"name": "pre", "backend": "dali"},
        "resnet18": {"name": "resnet18", "platform": "onnxruntime_onnx"},
    }
    outer = EnsembleConfig.from_json(
        "classification", config("classification", ["classification_infer", "classification_postprocess"])
    )
    expanded = outer.with_nested(served.get)
    assert expanded.steps == ("classification_infer", "image_guard", "pre", "resnet18", "classification_postprocess")
    assert stand_ins(expanded.steps, {"resnet18": {"kind": "stand-in"}}) == ("resnet18",)
    looping = {"a": config("a", ["a", "b"]), "b": {"name": "b"}}  # an ensemble naming itself ends
    assert EnsembleConfig.from_json("a", looping["a"]).with_nested(looping.get).steps == ("a", "b")


def test_a_classification_ensembles_class_count_is_its_postprocessings_scores():
    from tests.support.fake_triton import repository

    def classes(served: dict, name: str = "classification") -> int | None:
        return EnsembleConfig.from_json(name, served[name]).with_nested(served.get).classes

    served = {config["name"]: config for config in repository(classes=37)}
    assert classes(served) == 37
    post = served["classify_post"]
    grpc_post = {"config": {**post, "input": [{**post["input"][0], "dims": ["37"]}]}}  # gRPC's dims are strings
    assert classes({**served, "classify_post": grpc_post}) == 37
    assert classes(served, "detection") is None
    assert classes({**served, "classify_post": {**post, "input": [{"name": "LOGITS", "dims": [-1]}]}}) is None
