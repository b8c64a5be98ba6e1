"""Deployment paths through the real tritonserver: a prefixed export, the README's curl command,
the documented raw gRPC request, and the Prometheus counters the README names."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT, shared_path
from tests.integration.conftest import running_server
from tests.integration.test_classification import SCORE_TOLERANCE, in_process_probabilities
from triton_vision_client.client import VisionClient
from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration

PREFIX = "tv_"
METRICS_PREFIX = "metrics_"  # a second export that only the metrics test calls: its counters are its own
README = ROOT / "README.md"
CURL_MARKER = "<!-- the curl command: run as written by tests/integration/test_deploy.py -->"


@pytest.fixture(scope="module")
def photo_path(tmp_path_factory, chelsea_rgb) -> Path:
    """kitten.jpg from ../shared, else scikit-image's chelsea (a real photo) as a JPEG."""
    try:
        return shared_path("images/kitten.jpg")
    except pytest.skip.Exception:
        path = tmp_path_factory.mktemp("photo") / "chelsea.jpg"
        assert cv2.imwrite(str(path), cv2.cvtColor(chelsea_rgb, cv2.COLOR_RGB2BGR))
        return path


# -- a prefixed export ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prefixed_server(classification_repository, tmp_path_factory):
    """export-repo --prefix tv_ --models classification into a repository that already holds a
    user's model named 'classification' (it must stay theirs), served by the real tritonserver with
    each step a model of its own, as the NGC container in a deployment serves it (per-step metrics)."""
    from triton_vision_authoring.check import check_repository
    from triton_vision_authoring.export_repo import export_repository

    dest = tmp_path_factory.mktemp("users_repository")
    theirs = dest / t.CLASSIFICATION
    shutil.copytree(classification_repository / t.MODEL_INFO, theirs)  # any working model will do
    text = (theirs / "config.pbtxt").read_text().replace('name: "model_info"', 'name: "classification"')
    (theirs / "config.pbtxt").write_text(text)
    export_repository(classification_repository, dest, prefix=PREFIX, models=[t.CLASSIFICATION])
    export_repository(classification_repository, dest, prefix=METRICS_PREFIX, models=[t.CLASSIFICATION])
    assert check_repository(dest).problems == []
    with running_server(dest, fuse=False) as server:
        yield server, dest


def test_prefixed_export_classifies_a_real_photo_like_in_process_onnx(prefixed_server, photo_path: Path):
    server, dest = prefixed_server
    image = photo_path.read_bytes()
    with VisionClient(server.options.grpc_url, "grpc", model_prefix=PREFIX) as client:
        (result,) = client.classify([image], top_k=5)
        warnings = client.stand_in_warnings([t.CLASSIFIER])
    (expected,) = in_process_probabilities(dest / (PREFIX + t.CLASSIFIER) / "1" / "model.onnx", [image])
    assert list(result.class_ids) == list(np.argsort(-expected, kind="stable")[:5])
    assert result.scores == pytest.approx(expected[list(result.class_ids)], abs=SCORE_TOLERANCE)
    assert warnings == [
        f"WARNING: the served '{PREFIX}{t.CLASSIFIER}' is a stand-in with random weights: its answers are meaningless"
    ]


def test_the_users_own_model_of_the_same_name_is_untouched(prefixed_server):
    import tritonclient.grpc as grpcclient

    server, _ = prefixed_server
    client = grpcclient.InferenceServerClient(server.options.grpc_url)
    metadata = client.get_model_metadata(t.CLASSIFICATION, as_json=True)
    assert [i["name"] for i in metadata["inputs"]] == [t.INFO_QUERY]  # the user's model, not our ensemble
    assert client.is_model_ready(PREFIX + t.CLASSIFICATION)


# -- the README's curl command ---------------------------------------------------------------------
def readme_curl_command() -> str:
    text = README.read_text()
    assert CURL_MARKER in text, "the README lost its tested curl command"
    block = re.search(r"```bash\n(.*?)```", text[text.index(CURL_MARKER) :], flags=re.DOTALL)
    assert block is not None
    return block.group(1)


def test_readme_curl_command_prints_the_labels_the_grpc_client_gets(classification_server, photo_path: Path):
    if shutil.which("curl") is None or shutil.which("jq") is None:
        pytest.skip("curl and jq are needed to run the README's command")
    command = readme_curl_command()
    # Only the variables the README defines change: the server address and the image file.
    env = {**os.environ, "TRITON": classification_server.options.http_url, "IMG": str(photo_path)}
    run = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    with VisionClient(classification_server.options.grpc_url, "grpc") as client:
        (expected,) = client.classify([photo_path.read_bytes()], top_k=3)
    assert [line.split(None, 1)[1] for line in lines] == list(expected.labels)
    assert [float(line.split(None, 1)[0]) for line in lines] == pytest.approx(expected.scores, abs=1e-6)


# -- the documented raw gRPC request --------------------------------------------------------------
def test_documented_grpc_request_fields_classify_with_generated_stubs_only(classification_server, photo_path):
    """ModelInfer with the fields the README lists, through stubs generated from grpc_service.proto
    (tritonclient ships them) and nothing of tritonclient's client: what any language does."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    image = photo_path.read_bytes()
    request = service_pb2.ModelInferRequest(model_name=t.CLASSIFICATION)
    tensor = request.inputs.add(name=t.IMAGE, datatype="UINT8", shape=[1, len(image)])
    assert tensor.name == t.IMAGE
    request.raw_input_contents.append(image)
    request.parameters[t.TOP_K].int64_param = 3
    request.outputs.add(name=t.LABELS)
    with grpc.insecure_channel(classification_server.options.grpc_url) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    (output,) = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == (t.LABELS, "BYTES", [1, 3])
    raw, labels = response.raw_output_contents[0], []
    while raw:  # BYTES: each element is a 4-byte little-endian length, then the bytes
        (length,) = struct.unpack("<I", raw[:4])
        labels.append(raw[4 : 4 + length].decode())
        raw = raw[4 + length :]
    with VisionClient(classification_server.options.grpc_url, "grpc") as client:
        (expected,) = client.classify([image], top_k=3)
    assert labels == list(expected.labels)


# -- Prometheus metrics ----------------------------------------------------------------------------
def scrape(server) -> dict[tuple[str, str], float]:
    url = f"http://{server.options.client_host}:{server.options.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values = {}
    for match in re.finditer(r'^(nv_inference_\w+)\{model="([^"]+)",version="1"\} (\S+)$', text, flags=re.MULTILINE):
        values[(match.group(1), match.group(2))] = float(match.group(3))
    return values


def test_metrics_separate_queue_from_compute_for_every_step_of_the_ensemble(prefixed_server, photo_path):
    """On an ensemble no other test calls (metrics_classification), so that the counters grow by this
    test's one request alone (on the shared server they once grew by 2: another test's request)."""
    from tests.support.modelconfigs import step_models

    server, dest = prefixed_server
    ensemble_name = METRICS_PREFIX + t.CLASSIFICATION
    steps = step_models(dest, ensemble_name)
    assert all(step.startswith(METRICS_PREFIX) for step in steps)
    with VisionClient(server.options.grpc_url, "grpc", model_prefix=METRICS_PREFIX) as client:
        before = scrape(server)
        client.classify([photo_path.read_bytes()] * 3, top_k=1)
    deadline = time.monotonic() + 5.0  # counters are updated as each request completes: wait for all
    while True:
        after = scrape(server)
        done = [
            after.get(("nv_inference_request_success", m), 0) > before.get(("nv_inference_request_success", m), 0)
            for m in [ensemble_name, *steps]
        ]
        if all(done) or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    def grew(metric: str, model: str) -> float:
        return after[(metric, model)] - before.get((metric, model), 0.0)

    for model in [ensemble_name, *steps]:
        assert grew("nv_inference_request_success", model) == 1, model
        for metric in ("nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us"):
            assert (metric, model) in after, (metric, model)
    for model in steps:
        assert grew("nv_inference_compute_infer_duration_us", model) > 0, model
    # The ensemble's compute counter is the sum of its steps' compute counters (what the README says),
    # the nested NAME_infer's being the sum of its own.
    leaves = step_models(dest, ensemble_name, nested=False)
    step_compute = sum(grew("nv_inference_compute_infer_duration_us", m) for m in leaves)
    assert grew("nv_inference_compute_infer_duration_us", ensemble_name) == pytest.approx(step_compute, rel=0.02)
