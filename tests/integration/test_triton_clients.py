"""Triton's own client conventions against the bare models, through the real tritonserver.

Triton's reference ``image_client.py`` (triton-inference-server/client, src/python/examples) reads
a model's metadata and config before sending anything and refuses a model unless it has one input
and one output, an FP32 output that is a vector, an input of three dimensions besides the batch,
and an input ``format`` of FORMAT_NCHW or FORMAT_NHWC; it then asks for the classification
extension (``InferRequestedOutput(name, class_count=k)``) and prints the "score:index:label"
strings. These tests check the same protocol facts, over gRPC and HTTP, on the served ``resnet18``
(its code is not copied here), and that a client doing its own preprocessing gets a real
classifier's answer from the bare model.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.conftest import MODEL_REPOSITORY, copy_model_dirs, shared_path
from tests.integration.conftest import running_server
from tests.support.reference import classification_input
from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration

PROTOCOLS = {"grpc": grpcclient, "http": httpclient}
LABELS = (MODEL_REPOSITORY / t.CLASSIFIER / "imagenet_labels.txt").read_text().splitlines()


def connect(server, protocol: str):
    if protocol == "grpc":
        return grpcclient.InferenceServerClient(server.options.grpc_url)
    return httpclient.InferenceServerClient(server.options.http_url)


def metadata_and_config(client, protocol: str) -> tuple[dict, dict]:
    """Both protocols' answers as plain dicts (gRPC: protobuf as JSON; HTTP: JSON already)."""
    if protocol == "grpc":
        metadata = client.get_model_metadata(t.CLASSIFIER, as_json=True)
        config = client.get_model_config(t.CLASSIFIER, as_json=True)["config"]
        for tensor in metadata["inputs"] + metadata["outputs"]:
            tensor["shape"] = [int(d) for d in tensor["shape"]]  # int64 is a string in protobuf JSON
        return metadata, config
    return client.get_model_metadata(t.CLASSIFIER), client.get_model_config(t.CLASSIFIER)


@pytest.fixture(scope="module")
def photos(chelsea_rgb) -> list[bytes]:
    """Two real photos, encoded as a client would have them."""
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(chelsea_rgb, cv2.COLOR_RGB2BGR))
    assert ok
    from skimage import data

    ok, png = cv2.imencode(".png", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    assert ok
    return [jpeg.tobytes(), png.tobytes()]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_resnet18_passes_the_reference_image_clients_model_checks(classification_server, protocol):
    with connect(classification_server, protocol) as client:
        metadata, config = metadata_and_config(client, protocol)
    assert len(metadata["inputs"]) == 1 and len(metadata["outputs"]) == 1 and len(config["input"]) == 1
    (image,), (output,) = metadata["inputs"], metadata["outputs"]
    assert output["datatype"] == "FP32"
    batched = int(config["max_batch_size"]) > 0
    assert batched and int(config["max_batch_size"]) == 32
    assert [d for d in output["shape"][1:] if d > 1] == [1000], "a vector besides the batch dimension"
    assert len(image["shape"]) == 4, "three dimensions besides the batch"
    assert config["input"][0]["format"] == "FORMAT_NCHW"
    channels, height, width = image["shape"][1:]
    assert (channels, height, width) == (3, t.CLASSIFIER_INPUT_SIZE, t.CLASSIFIER_INPUT_SIZE)
    assert image["datatype"] == "FP32" and image["name"] == t.CLASSIFIER_INPUT
    assert config["output"][0]["label_filename"] == "imagenet_labels.txt"


def infer(client, module, batch: np.ndarray, class_count: int = 0) -> np.ndarray:
    image = module.InferInput(t.CLASSIFIER_INPUT, list(batch.shape), "FP32")
    image.set_data_from_numpy(batch)
    output = module.InferRequestedOutput(t.CLASSIFIER_OUTPUT, class_count=class_count)
    return client.infer(t.CLASSIFIER, [image], outputs=[output]).as_numpy(t.CLASSIFIER_OUTPUT)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("k", [1, 5])
def test_class_count_answers_score_index_label_of_the_top_k_logits(classification_server, photos, protocol, k):
    """The classification extension against the same request's plain logits and the label file."""
    batch = np.stack([classification_input(data) for data in photos])
    with connect(classification_server, protocol) as client:
        logits = infer(client, PROTOCOLS[protocol], batch)
        classes = infer(client, PROTOCOLS[protocol], batch, class_count=k)
    assert logits.shape == (2, 1000)
    assert classes.shape == (2, k)
    for row_logits, row in zip(logits, classes, strict=True):
        expected = np.argsort(-row_logits, kind="stable")[:k]
        parsed = [entry.decode().split(":", 2) for entry in row]
        assert [int(index) for _, index, _ in parsed] == list(expected)
        for (score, index, label), class_id in zip(parsed, expected, strict=True):
            assert float(score) == pytest.approx(row_logits[class_id], rel=1e-5, abs=1e-5)
            assert label == LABELS[int(index)]


@pytest.fixture(scope="module")
def bare_real_classifier(tmp_path_factory):
    """Only ``resnet18``, its file ../shared's real ImageNet MobileNetV2 (same tensor signature after import)."""
    from triton_vision_authoring import models as model_files

    source = shared_path("models/mobilenetv2-12-int8.onnx")
    repository = copy_model_dirs(tmp_path_factory.mktemp("bare_classifier_repo"), [t.CLASSIFIER])
    model_files.prepare(repository, model_files.CATALOGUE[t.CLASSIFIER], from_path=source)
    with running_server(repository) as server:
        yield server


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_client_with_its_own_preprocessing_gets_a_cat_from_the_bare_model(bare_real_classifier, photos, protocol):
    """The client-side-preprocessing baseline: preprocess on the client, call resnet18 directly, read
    class_count labels."""
    kitten = shared_path("images/kitten.jpg").read_bytes()
    batch = np.stack([classification_input(kitten), classification_input(photos[0])])
    with connect(bare_real_classifier, protocol) as client:
        classes = infer(client, PROTOCOLS[protocol], batch, class_count=3)
    for row in classes:
        _, index, label = row[0].decode().split(":", 2)
        assert int(index) in range(281, 286), row  # tabby, tiger cat, Persian, Siamese, Egyptian cat
        assert "cat" in label or label.startswith("tabby")
