"""The bench's peer (the HTTP server a user would write instead): its request handling, with a fake
ONNX Runtime session, and the report's ensemble-against-peer figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY
from triton_vision_bench import peer as p
from triton_vision_bench import profiles
from triton_vision_bench import report as br
from triton_vision_bench.render import peer_lines
from triton_vision_models import tensors as t
from triton_vision_models.repository import ModelRepository

CLASSES = 1000


@pytest.fixture(scope="module")
def repository() -> ModelRepository:
    return ModelRepository.load(MODEL_REPOSITORY)


def peer_with(repository: ModelRepository, ensemble: str, session) -> p.PeerModel:
    chosen = profiles.profile(repository, ensemble)
    wired = p.wiring(repository, ensemble, chosen.model, chosen.model_path, chosen.model_inputs)
    post = p.postprocessor(chosen.task, p.model_config(repository, wired.post_model))
    return p.PeerModel(chosen.pre, wired, session, post)


def test_wiring_follows_the_ensembles_configs(repository):
    classification = profiles.profile(repository, t.CLASSIFICATION)
    wired = p.wiring(repository, t.CLASSIFICATION, classification.model, classification.model_path, {})
    assert wired.post_model == "classification_postprocess"
    assert wired.post_inputs == {t.LOGITS: (p.MODEL, t.CLASSIFIER_OUTPUT)}
    detection = profiles.profile(repository, t.DETECTION)
    wired = p.wiring(repository, t.DETECTION, detection.model, detection.model_path, {})
    assert wired.post_model == "detection_postprocess"
    sources = set(wired.post_inputs.values())
    assert (p.PREPROCESSING, t.ORIGINAL_SIZE) in sources and (p.MODEL, t.DETECTOR_BOXES) in sources


def test_an_image_is_answered_with_the_top_5_of_the_softmax_of_the_models_logits(repository):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(1, CLASSES)).astype(np.float32) * 4
    seen = []

    def session(inputs):
        seen.append({k: v.copy() for k, v in inputs.items()})
        return {t.CLASSIFIER_OUTPUT: logits}

    peer = peer_with(repository, t.CLASSIFICATION, session)
    import cv2

    ok, jpeg = cv2.imencode(".jpg", np.full((300, 400, 3), 120, np.uint8))
    status, body = peer.answer(jpeg.tobytes())
    assert status == 200
    (inputs,) = seen
    assert list(inputs) == [t.CLASSIFIER_INPUT] and inputs[t.CLASSIFIER_INPUT].shape == (1, 3, 224, 224)
    assert inputs[t.CLASSIFIER_INPUT].dtype == np.float32
    # The reference: softmax written here, the five largest, descending.
    exp = np.exp(logits[0].astype(np.float64) - logits[0].max())
    probabilities = exp / exp.sum()
    expected = np.argsort(-probabilities)[:5]
    assert body[t.CLASS_IDS] == expected.tolist()
    assert body[t.SCORES] == pytest.approx(probabilities[expected].tolist(), rel=1e-5)
    labels = (MODEL_REPOSITORY / t.CLASSIFIER / "imagenet_labels.txt").read_text().splitlines()
    assert body[t.LABELS] == [labels[i] for i in expected]


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"", "the request body is empty"), (b"GIF89a" + bytes(40), "decode"), (b"\xff\xd8\xff" + bytes(30), "decode")],
)
def test_a_bad_body_is_a_400_naming_what_is_wrong_and_the_model_is_not_run(repository, body, message):
    calls = []
    peer = peer_with(repository, t.CLASSIFICATION, lambda inputs: calls.append(inputs) or {})
    status, answer = peer.answer(body)
    assert status == 400 and message in answer["error"], answer
    assert calls == []


def test_a_large_mask_travels_as_png_small_arrays_as_lists():
    import base64

    import cv2

    mask = (np.arange(100 * 80) % 21).astype(np.uint8).reshape(1, 100, 80)
    sent = p.jsonable(mask)
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(sent["png_base64"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert sent["shape"] == [1, 100, 80] and np.array_equal(decoded, mask[0])
    assert p.jsonable(np.array([b"tabby", b"tiger cat"], dtype=np.object_)) == ["tabby", "tiger cat"]
    assert p.jsonable(np.array([3, 1], np.int32)) == [3, 1]


def point(concurrency: int, rate: float, p50: float, server: float, client: float = 1.0) -> dict:
    return {
        "concurrency": concurrency,
        "images_per_s": rate,
        "p50_ms": p50,
        "server_cpu_ms_per_image": server,
        "client_cpu_ms_per_image": client,
    }


def test_the_summary_states_ensemble_over_peer_at_each_ones_best_point_and_at_the_lowest_shared_concurrency():
    ensemble = [point(1, 20.0, 30.0, 50.0), point(4, 40.0, 90.0, 48.0), point(8, 38.0, 200.0, 47.0)]
    peer = [point(1, 22.0, 44.0, 46.0, 2.0), point(4, 44.0, 88.0, 42.0, 2.0), point(8, 43.0, 180.0, 43.0, 2.0)]
    found = br.peer_summary(ensemble, peer)
    assert (found["ensemble_best_concurrency"], found["peer_best_concurrency"]) == (4, 4)
    assert found["images_per_s_ratio"] == pytest.approx(40 / 44)
    assert found["server_cpu_ratio"] == pytest.approx(48 / 42)
    assert found["total_cpu_ratio"] == pytest.approx(49 / 44)
    assert found["lowest_concurrency"] == 1 and found["p50_at_lowest_ratio"] == pytest.approx(30 / 44)
    lines = peer_lines(found)
    assert "ensemble / peer = 0.91x" in lines[0] and "ensemble / peer = 1.14x" in lines[1]
    assert br.peer_summary(ensemble, []) == {} and peer_lines({}) == []
    missing = br.peer_summary(ensemble, [{"concurrency": 2, "images_per_s": 5.0, "p50_ms": 1.0}])
    assert math.isnan(missing["server_cpu_ratio"]) and missing["lowest_concurrency"] is None  # none shared
    assert math.isnan(missing["p50_at_lowest_ratio"]) and missing["images_per_s_ratio"] == pytest.approx(8.0)


def test_a_committed_report_with_the_peer_renders_its_section():
    import json

    from tests.conftest import ROOT
    from triton_vision_bench.render import render_markdown

    report = json.loads((ROOT / "docs/bench/peer-mobilenetv2/bench-classification.json").read_text())
    text = render_markdown(report)
    assert "## Against the server a user would write instead (the peer)" in text
    assert text.count("ensemble / peer =") == 3
