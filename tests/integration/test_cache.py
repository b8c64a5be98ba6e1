"""Triton's response cache through the real tritonserver (``serve --cache-size``).

Triton keys a cache entry on the model's name and version and the request's input bytes, not on
its parameters. So the ensembles clients call are not cached; their image's part, ``NAME_infer``
(guard -> preprocessing -> model), is: a repeated image skips decoding and the model, and the
post-processing still follows each request's ``top_k`` or thresholds. Each test reads the counters
of the models it calls on a private server (this module's), before and after.
"""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from tests.conftest import MODEL_REPOSITORY, copy_model_dirs, ensemble_repository
from tests.integration.conftest import running_server
from tests.support.detection import STAND_IN_SCORE, bright_box_detector, bright_rectangle_image, encode
from tests.support.modelconfigs import step_models
from triton_vision_authoring import models as model_files
from triton_vision_client.client import ClientError, VisionClient
from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration

CACHE_BYTES = 64 * 2**20
# An ensemble the tests add, to show why the ensembles clients call are not cached: the classification
# ensemble with Triton's top-level cache enabled.
TOP_LEVEL = "classification_top_level_cache"


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """Classification (ResNet-18 stand-in) and detection (the bright-box known-answer detector)."""
    root = ensemble_repository(tmp_path_factory.mktemp("cache_repo"), t.CLASSIFICATION)
    extra = [m for m in [t.DETECTION, *step_models(MODEL_REPOSITORY, t.DETECTION)] if not (root / m).exists()]
    copy_model_dirs(root, extra)
    model_files.prepare(root, model_files.CATALOGUE[t.CLASSIFIER], stand_in=True)
    detector = tmp_path_factory.mktemp("bright_box") / "bright_box.onnx"
    onnx.save(bright_box_detector(), str(detector))
    model_files.prepare(root, model_files.CATALOGUE[t.DETECTOR], from_path=detector)
    top_level = root / TOP_LEVEL
    shutil.copytree(root / t.CLASSIFICATION, top_level)
    config = top_level / "config.pbtxt"
    text = config.read_text().replace(f'name: "{t.CLASSIFICATION}"', f'name: "{TOP_LEVEL}"')
    config.write_text(text + "response_cache { enable: true }\n")
    (top_level / "spec.toml").unlink()
    return root


@pytest.fixture(scope="module")
def server(repository):
    with running_server(repository, cache_size=CACHE_BYTES) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with VisionClient(server.options.grpc_url, "grpc") as connected:
        yield connected


@pytest.fixture(scope="module")
def stats(server):
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(server.options.grpc_url) as triton:

        def counters(model: str) -> dict[str, int]:
            (entry,) = triton.get_inference_statistics(model, as_json=True)["model_stats"]
            inference = entry["inference_stats"]
            return {key: int(inference.get(key, {}).get("count", 0)) for key in ("success", "cache_hit", "cache_miss")}

        yield counters


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in before}


def test_a_repeated_image_is_answered_from_the_cache_with_the_same_answer(client, stats):
    data = encode(bright_rectangle_image(300, 400, (50, 60, 250, 200)), ".png")  # an image no other test sends
    cached, model = stats(t.CLASSIFICATION_INFER), stats(t.CLASSIFIER)
    (first,) = client.classify([data], top_k=5)
    (again,) = client.classify([data], top_k=5)
    assert delta(cached, stats(t.CLASSIFICATION_INFER)) == {"success": 2, "cache_hit": 1, "cache_miss": 1}
    assert delta(model, stats(t.CLASSIFIER))["success"] == 1  # the model ran for the first request only
    assert again.class_ids == first.class_ids and again.labels == first.labels
    np.testing.assert_array_equal(np.array(again.scores), np.array(first.scores))


def test_different_top_k_share_the_images_entry_and_each_gets_its_own_answer(client, stats, kitten_jpeg):
    data = kitten_jpeg
    (five,) = client.classify([data], top_k=5)  # the entry (if an earlier test made none)
    cached, model = stats(t.CLASSIFICATION_INFER), stats(t.CLASSIFIER)
    (three,) = client.classify([data], top_k=3)
    (seven,) = client.classify([data], top_k=7)
    assert delta(cached, stats(t.CLASSIFICATION_INFER))["cache_hit"] == 2
    assert delta(model, stats(t.CLASSIFIER))["success"] == 0
    assert len(three.class_ids) == 3 and three.class_ids == five.class_ids[:3]
    assert len(seven.class_ids) == 7 and seven.class_ids[:5] == five.class_ids
    assert seven.scores[:5] == pytest.approx(five.scores, rel=0, abs=0)


def test_different_detection_thresholds_share_the_images_entry_and_each_gets_its_own_answer(client, stats):
    data = encode(bright_rectangle_image(389, 517, (101, 57, 333, 290)), ".png")
    (kept,) = client.detect([data], score_threshold=STAND_IN_SCORE - 0.01)  # the entry
    cached = stats(t.DETECTION_INFER)
    (dropped,) = client.detect([data], score_threshold=STAND_IN_SCORE + 0.001)
    (kept_again,) = client.detect([data], score_threshold=0.0)
    assert delta(cached, stats(t.DETECTION_INFER))["cache_hit"] == 2
    assert len(kept) == 1 and len(dropped) == 0  # the detection scores STAND_IN_SCORE: above one, below the other
    assert kept_again.boxes == kept.boxes and kept_again.scores == kept.scores


def test_a_refused_image_is_not_cached_and_is_refused_again(client, stats):
    cached = stats(t.CLASSIFICATION_INFER)
    for _ in range(2):
        with pytest.raises(ClientError, match="not a JPEG or PNG file"):
            client.classify([b"plain text, not an image"])
    assert delta(cached, stats(t.CLASSIFICATION_INFER))["cache_hit"] == 0


def test_tritons_top_level_ensemble_cache_ignores_request_parameters(client, stats):
    """Why the ensembles clients call are not cached: Triton's key leaves parameters out, so an
    ensemble with its own cache answers top_k=3 with the entry a top_k=5 request left."""
    data = encode(bright_rectangle_image(240, 320, (10, 20, 200, 100)), ".jpg")  # sent to this ensemble only
    before = stats(TOP_LEVEL)
    (five,) = client.classify([data], top_k=5, ensemble=TOP_LEVEL)
    (asked_three,) = client.classify([data], top_k=3, ensemble=TOP_LEVEL)
    assert delta(before, stats(TOP_LEVEL))["cache_hit"] == 1
    assert len(five.class_ids) == 5
    assert asked_three.class_ids == five.class_ids  # five labels for a request that asked for three
