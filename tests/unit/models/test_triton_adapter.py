"""The adapter between Triton's Python backend and the pure runners, with a fake ``pb_utils``."""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.support import fake_pb_utils as pb
from triton_vision_models.errors import InferenceError, InvalidParameterError
from triton_vision_models.model_config import ModelConfig, RequestData, TensorConfig

CONFIG = ModelConfig(
    name="scaler",
    repository_dir=Path("/nonexistent/scaler"),
    version_dir=Path("/nonexistent/scaler/1"),
    max_batch_size=4,
    inputs=(TensorConfig("X", np.dtype(np.uint8), (-1,)),),
    outputs=(TensorConfig("Y", np.dtype(np.float32), (-1,)), TensorConfig("NAMES", np.dtype(np.object_), (1,))),
)


@pytest.fixture(scope="module")
def adapter_module():
    with pb.installed():
        import triton_vision_models.triton_adapter as module

        yield importlib.reload(module)


class Recorder:
    """A runner that doubles X as float64 (the adapter casts to the config's FP32) and records calls."""

    def __init__(self, fail_when_batched_with: int | None = None) -> None:
        self.calls: list[int] = []
        self.fail_when_batched_with = fail_when_batched_with

    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray] | Exception]:
        self.calls.append(len(requests))
        results: list[dict[str, np.ndarray] | Exception] = []
        for request in requests:
            x = request.inputs["X"]
            if self.fail_when_batched_with is not None and int(x[0, 0]) == self.fail_when_batched_with:
                raise InferenceError(f"model 'scaler': decoder failed on {int(x[0, 0])}")
            if request.parameters.get("scale") == "bad":
                results.append(InvalidParameterError("parameter 'scale' must be a number, got 'bad'"))
                continue
            names = np.array([[b"doubled"]] * x.shape[0], dtype=np.object_)
            results.append({"Y": x.astype(np.float64) * 2, "NAMES": names})
        return results


def request(*values: int, dtype=np.uint8, **parameters) -> pb.Request:
    return pb.Request({"X": np.array([values], dtype=dtype)}, parameters)


def error_of(response) -> tuple[int, str]:
    assert response.has_error(), f"expected an error, got outputs {response.outputs()}"
    return response.error.code(), response.error.message()


def test_outputs_are_cast_to_the_config_dtype_and_parameters_reach_the_runner(adapter_module):
    seen: list[dict] = []

    def runner(requests):
        seen.extend(dict(r.parameters) for r in requests)
        return Recorder()(requests)

    adapter = adapter_module.TritonModelAdapter(CONFIG, runner)
    (response,) = adapter.execute([request(1, 2, 3, top_k=3)])
    assert not response.has_error()
    y = response.outputs()["Y"]
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [[2, 4, 6]])
    assert response.outputs()["NAMES"].dtype == np.object_
    assert seen == [{"top_k": 3}]


def test_wrong_dtype_is_invalid_arg_naming_model_tensor_and_types_and_others_answer(adapter_module):
    runner = Recorder()
    adapter = adapter_module.TritonModelAdapter(CONFIG, runner)
    good, bad = adapter.execute([request(5), request(5, dtype=np.float32)])
    assert not good.has_error()
    code, message = error_of(bad)
    assert code == pb.TritonError.INVALID_ARG
    assert message == "model 'scaler', input 'X': expected dtype uint8, got float32"
    assert runner.calls == [1]  # the refused request never reaches the runner


def test_missing_input_is_invalid_arg(adapter_module):
    adapter = adapter_module.TritonModelAdapter(CONFIG, Recorder())
    (response,) = adapter.execute([pb.Request({"OTHER": np.zeros((1, 1), np.uint8)})])
    assert error_of(response) == (pb.TritonError.INVALID_ARG, "model 'scaler': request has no input 'X'")


def test_refusal_returned_by_the_runner_fails_only_its_request(adapter_module):
    adapter = adapter_module.TritonModelAdapter(CONFIG, Recorder())
    first, second = adapter.execute([request(1, scale="bad"), request(2)])
    assert error_of(first) == (pb.TritonError.INVALID_ARG, "parameter 'scale' must be a number, got 'bad'")
    np.testing.assert_array_equal(second.outputs()["Y"], [[4]])


def test_failed_batch_is_retried_request_by_request_so_only_the_bad_one_fails(adapter_module):
    runner = Recorder(fail_when_batched_with=13)
    adapter = adapter_module.TritonModelAdapter(CONFIG, runner)
    responses = adapter.execute([request(1), request(13), request(3)])
    assert runner.calls == [3, 1, 1, 1]
    np.testing.assert_array_equal(responses[0].outputs()["Y"], [[2]])
    assert error_of(responses[1]) == (pb.TritonError.INTERNAL, "model 'scaler': decoder failed on 13")
    np.testing.assert_array_equal(responses[2].outputs()["Y"], [[6]])


def test_unexpected_exception_is_internal_names_the_model_and_is_logged(adapter_module):
    def runner(requests):
        raise ValueError("shapes (3,) and (4,) not aligned")

    pb.Logger.messages.clear()
    adapter = adapter_module.TritonModelAdapter(CONFIG, runner)
    (response,) = adapter.execute([request(1)])
    expected = "model 'scaler': ValueError: shapes (3,) and (4,) not aligned"
    assert error_of(response) == (pb.TritonError.INTERNAL, expected)
    assert ("error", expected) in pb.Logger.messages


def test_exception_while_reading_one_request_fails_that_request_alone(adapter_module):
    class BrokenRequest(pb.Request):
        def parameters(self) -> str:
            raise RuntimeError("parameters unavailable")

    runner = Recorder()
    adapter = adapter_module.TritonModelAdapter(CONFIG, runner)
    broken, good = adapter.execute([BrokenRequest({"X": np.ones((1, 1), np.uint8)}), request(7)])
    code, message = error_of(broken)
    assert code == pb.TritonError.INTERNAL
    assert message == "model 'scaler': RuntimeError: parameters unavailable"
    np.testing.assert_array_equal(good.outputs()["Y"], [[14]])
    assert runner.calls == [1]


def test_python_model_builds_its_runner_once_in_initialize(adapter_module, tmp_path):
    built: list[ModelConfig] = []

    def load_runner(config: ModelConfig):
        built.append(config)
        return Recorder()

    model_class = adapter_module.python_model(load_runner)
    model = model_class()
    config = {
        "name": "scaler",
        "max_batch_size": 4,
        "input": [{"name": "X", "data_type": "TYPE_UINT8", "dims": [-1]}],
        "output": [
            {"name": "Y", "data_type": "TYPE_FP32", "dims": [-1]},
            {"name": "NAMES", "data_type": "TYPE_STRING", "dims": [1]},
        ],
    }
    model.initialize({"model_config": json.dumps(config), "model_repository": str(tmp_path), "model_version": "1"})
    for value in (1, 2, 3):
        (response,) = model.execute([request(value)])
        np.testing.assert_array_equal(response.outputs()["Y"], [[2 * value]])
    assert len(built) == 1
    assert built[0].inputs == CONFIG.inputs


def test_a_refused_requests_input_is_freed_when_the_execution_ends_without_the_garbage_collector(adapter_module):
    """The refusal's traceback held the runner's frames (its result list, the request's arrays): a cycle
    that kept a refused request's private copy of its input alive until the collector ran."""
    import gc
    import weakref

    from triton_vision_models.errors import ImageRejectedError

    def runner(requests):
        results: list = []
        for data in requests:
            x = data.inputs["X"]
            try:
                raise ImageRejectedError(f"input 'X': refused ({x.shape[1]} bytes)")
            except ImageRejectedError as exc:
                results.append(exc)
        return results

    adapter = adapter_module.TritonModelAdapter(CONFIG, runner)
    array = np.zeros((1, 1 << 20), np.uint8)
    alive = weakref.ref(array)
    gc.disable()
    try:
        (response,) = adapter.execute([pb.Request({"X": array})])
        del array
        assert alive() is None, "the refused request's input is still referenced"
    finally:
        gc.enable()
    assert error_of(response) == (pb.TritonError.INVALID_ARG, "input 'X': refused (1048576 bytes)")


def test_each_error_response_is_counted_under_its_reason_and_every_reason_starts_at_zero(adapter_module):
    pb.MetricFamily.values.clear()
    config = ModelConfig(**{**CONFIG.__dict__, "name": "counted"})
    adapter = adapter_module.TritonModelAdapter(config, Recorder(fail_when_batched_with=9))
    adapter.execute([request(1, scale="bad"), request(2), request(3, scale="bad")])
    adapter.execute([request(9)])  # the runner raises InferenceError: an internal failure
    adapter.execute([request(1, dtype=np.float32)])  # wrong dtype: refused before the runner
    counted = {
        dict(labels)["reason"]: value
        for (family, labels), value in pb.MetricFamily.values.items()
        if family == "triton_vision_request_errors_total" and dict(labels)["model"] == "counted"
    }
    assert counted == {"image": 0, "parameter": 2, "input": 1, "internal": 1}
