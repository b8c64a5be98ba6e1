"""A fused ensemble through the real tritonserver: ``serve`` (and every local server) runs each
ensemble's steps in one process (triton_vision_serving.fusion). Its answers must be the answers of
its steps called one after the other, its refusals theirs, and the steps' own processes idle."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

import triton_vision_contract as contract
from tests.integration.conftest import running_server
from tests.support.images import accepted_images
from tests.support.processes import stub_pids
from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration

STEPS = (t.IMAGE_GUARD, t.CLASSIFICATION_PREPROCESS, t.CLASSIFIER, t.CLASSIFICATION_POSTPROCESS)


@pytest.fixture(scope="module")
def photo(chelsea_rgb) -> bytes:
    return accepted_images(chelsea_rgb)["baseline JPEG"]


@pytest.fixture(scope="module")
def server(classification_repository):
    with running_server(classification_repository) as running:
        yield running


def call(client, model: str, inputs: dict[str, np.ndarray], outputs: list[str], **parameters):
    tensors = []
    for name, array in inputs.items():
        tensor = grpcclient.InferInput(name, list(array.shape), "UINT8" if array.dtype == np.uint8 else "FP32")
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    asked = [grpcclient.InferRequestedOutput(name) for name in outputs]
    answer = client.infer(model, tensors, outputs=asked, parameters=parameters or None)
    return {name: answer.as_numpy(name) for name in outputs}


def success(client, model: str) -> int:
    (entry,) = client.get_inference_statistics(model, as_json=True)["model_stats"]
    return int(entry["inference_stats"].get("success", {}).get("count", 0))


def test_the_fused_ensemble_answers_as_its_steps_called_one_by_one(server, photo):
    image = np.frombuffer(photo, np.uint8)[None]
    with grpcclient.InferenceServerClient(server.options.grpc_url) as client:
        config = client.get_model_config(t.CLASSIFICATION, as_json=True)["config"]
        assert config["backend"] == contract.FUSED_BACKEND
        assert contract.ensemble_steps(config) == [t.CLASSIFICATION_INFER, t.CLASSIFICATION_POSTPROCESS]
        before = {step: success(client, step) for step in STEPS}
        fused = call(client, t.CLASSIFICATION, {t.IMAGE: image}, [t.CLASS_IDS, t.SCORES, t.LABELS], top_k=7)
        assert {step: success(client, step) for step in STEPS} == before  # the steps' processes idle
        checked = call(client, t.IMAGE_GUARD, {t.IMAGE: image}, ["CHECKED_IMAGE"])["CHECKED_IMAGE"]
        pixels = call(client, t.CLASSIFICATION_PREPROCESS, {t.IMAGE: checked}, ["PIXELS"])["PIXELS"]
        model = server_model_io(client)
        logits = call(client, t.CLASSIFIER, {model[0]: pixels}, [model[1]])[model[1]]
        steps = call(
            client, t.CLASSIFICATION_POSTPROCESS, {"LOGITS": logits}, [t.CLASS_IDS, t.SCORES, t.LABELS], top_k=7
        )
    np.testing.assert_array_equal(fused[t.CLASS_IDS], steps[t.CLASS_IDS])
    np.testing.assert_allclose(fused[t.SCORES], steps[t.SCORES], rtol=1e-6, atol=1e-7)
    assert fused[t.LABELS].tolist() == steps[t.LABELS].tolist()
    assert fused[t.CLASS_IDS].shape == (1, 7)


def server_model_io(client) -> tuple[str, str]:
    config = client.get_model_config(t.CLASSIFIER, as_json=True)["config"]
    return config["input"][0]["name"], config["output"][0]["name"]


def test_a_refusal_is_the_steps_own_and_other_requests_in_the_batch_are_answered(server, photo):
    gif = np.frombuffer(b"GIF89a" + bytes(64), np.uint8)[None]
    with grpcclient.InferenceServerClient(server.options.grpc_url) as client:
        with pytest.raises(grpcclient.InferenceServerException) as fused:
            call(client, t.CLASSIFICATION, {t.IMAGE: gif}, [t.CLASS_IDS])
        with pytest.raises(grpcclient.InferenceServerException) as guard:
            call(client, t.IMAGE_GUARD, {t.IMAGE: gif}, ["CHECKED_IMAGE"])
        # in Triton's words for a step's error: the ensembles it runs in, then the step's own message
        prefix = f"in ensemble '{t.CLASSIFICATION}', in ensemble '{t.CLASSIFICATION_INFER}', "
        assert fused.value.message() == prefix + guard.value.message()
        assert fused.value.status() == guard.value.status() == "StatusCode.INVALID_ARGUMENT"
        answered = call(client, t.CLASSIFICATION, {t.IMAGE: np.frombuffer(photo, np.uint8)[None]}, [t.CLASS_IDS])
    assert answered[t.CLASS_IDS].shape == (1, contract.DEFAULT_TOP_K)


def test_each_fused_instance_is_one_process(server):
    pids = stub_pids(server.process.pid, t.CLASSIFICATION)
    assert len(pids) == 2  # the busiest step's instance count (resnet18: two)
