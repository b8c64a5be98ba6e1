"""The Faster R-CNN exporter (export extra): tensor signature, stand-in marking, and faithfulness to torchvision.

The faithfulness test needs no DALI and no server: torchvision's own eager model (its own
normalise, resize and box rescaling) and the exported graph fed by the OpenCV reference
preprocessing, with boxes scaled back by hand, must give the same detections.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests.conftest import shared_path
from tests.support.detection import lively_random_state_dict, torchvision_reference_preprocess
from triton_vision_models import tensors as t

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def state_dict(tmp_path_factory):
    return lively_random_state_dict(tmp_path_factory.mktemp("frcnn") / "mobilenet_v3.pth")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, state_dict):
    """The .pth imported the way `triton-vision models prepare --model faster_rcnn_mobilenet_v3 --from` does."""
    from triton_vision_authoring import models as model_files

    repository = tmp_path_factory.mktemp("repo")
    source = model_files.prepare(
        repository, model_files.CATALOGUE[t.TORCHVISION_DETECTOR_MOBILENET], from_path=state_dict
    )
    return repository / t.TORCHVISION_DETECTOR / "1" / "model.onnx", source


def test_imported_state_dict_is_exported_with_the_tensor_signature(prepared, state_dict):
    path, source = prepared
    assert source.kind == "local" and source.origin.endswith("mobilenet_v3.pth")
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == [t.TORCHVISION_INPUT, t.TORCHVISION_IMAGE_SIZES]
    assert [o.name for o in model.graph.output] == [
        t.TORCHVISION_BOXES,
        t.TORCHVISION_SCORES,
        t.TORCHVISION_LABELS,
        t.TORCHVISION_COUNT,
    ]
    for value in list(model.graph.input) + list(model.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert not any(p.key == "triton_vision.stand_in" for p in model.metadata_props)
    # what Triton 24.10's ONNX Runtime loads: opset 17, IR version 8, the batch loop a plain ONNX Loop
    assert model.ir_version == 8 and [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert "Loop" in {node.op_type for node in model.graph.node}
    onnx.checker.check_model(model)


def test_exported_graph_with_reference_preprocessing_matches_torchvision_eager(prepared, state_dict):
    import cv2
    import onnxruntime as ort
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    data = shared_path("images/persons.jpg").read_bytes()
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    eager = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=91).eval()
    eager.load_state_dict(torch.load(str(state_dict), weights_only=True))
    with torch.no_grad():
        expected = eager([torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0])[0]

    pixels, (height, width) = torchvision_reference_preprocess(rgb)
    session = ort.InferenceSession(str(prepared[0]), providers=["CPUExecutionProvider"])
    sizes = np.array([[height, width]], dtype=np.int64)
    boxes, scores, labels, count = session.run(None, {t.TORCHVISION_INPUT: pixels, t.TORCHVISION_IMAGE_SIZES: sizes})
    assert boxes.shape == (1, 100, 4) and scores.shape == (1, 100) and count.shape == (1, 1)
    n = int(count[0, 0])
    assert n == len(expected["scores"]), "as many detections as torchvision's eager model"
    np.testing.assert_array_equal(boxes[0, n:], 0)
    np.testing.assert_array_equal(scores[0, n:], 0)
    boxes, scores, labels = boxes[:, :n], scores[:, :n], labels[:, :n]
    assert boxes[0, :, 2].max() <= width + 1e-3 and boxes[0, :, 3].max() <= height + 1e-3  # input pixels
    back = boxes[0] * np.array([640 / width, 491 / height] * 2, dtype=np.float32)

    assert len(expected["scores"]) >= 10, "the lively random weights must detect something"
    top = 10
    np.testing.assert_allclose(scores[0, :top], expected["scores"][:top].numpy(), atol=2e-3)
    np.testing.assert_array_equal(labels[0, :top], expected["labels"][:top].numpy())
    np.testing.assert_allclose(back[:top], expected["boxes"][:top].numpy(), atol=1.0)


def test_random_weight_export_is_marked_as_a_stand_in():
    from triton_vision_authoring.detection_onnx import export_faster_rcnn
    from triton_vision_authoring.standins import STAND_IN_KEY

    model = export_faster_rcnn("mobilenet_v3")
    assert any(p.key == STAND_IN_KEY and p.value == "true" for p in model.metadata_props)


def test_a_zero_padded_batch_answers_each_image_as_torchvision_does_alone(prepared, state_dict):
    """Differently sized images in one padded batch (N = 1, 2, 3): each answer is torchvision's eager
    answer for that image alone, and equals the exported graph's answer for that image alone."""
    import cv2
    import onnxruntime as ort
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    data = shared_path("images/persons.jpg").read_bytes()
    photo = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    images = [  # landscape, portrait crop, a small odd-sized copy
        photo,
        np.ascontiguousarray(photo[:, 150:450]),
        cv2.resize(photo, (517, 389), interpolation=cv2.INTER_AREA),
    ]
    eager = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=91).eval()
    eager.load_state_dict(torch.load(str(state_dict), weights_only=True))
    session = ort.InferenceSession(str(prepared[0]), providers=["CPUExecutionProvider"])
    inputs = [torchvision_reference_preprocess(rgb) for rgb in images]

    def run(members):
        height = max(inputs[i][1][0] for i in members)
        width = max(inputs[i][1][1] for i in members)
        batch = np.zeros((len(members), 3, height, width), np.float32)
        for row, i in enumerate(members):
            h, w = inputs[i][1]
            batch[row, :, :h, :w] = inputs[i][0][0]
        sizes = np.array([inputs[i][1] for i in members], dtype=np.int64)
        return session.run(None, {t.TORCHVISION_INPUT: batch, t.TORCHVISION_IMAGE_SIZES: sizes})

    alone = [run([i]) for i in range(3)]
    for members in ([0], [0, 1], [2, 0, 1]):
        boxes, scores, labels, count = run(members)
        assert boxes.shape == (len(members), 100, 4) and count.shape == (len(members), 1)
        for row, i in enumerate(members):
            a_boxes, a_scores, a_labels, a_count = alone[i]
            assert count[row, 0] == a_count[0, 0]
            np.testing.assert_allclose(boxes[row], a_boxes[0], atol=1e-3)
            np.testing.assert_allclose(scores[row], a_scores[0], atol=1e-5)
            np.testing.assert_array_equal(labels[row], a_labels[0])

    for i, rgb in enumerate(images):
        with torch.no_grad():
            expected = eager([torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0])[0]
        boxes, scores, labels, count = alone[i]
        n = int(count[0, 0])
        assert n == len(expected["scores"]) >= 10, "the lively random weights detect something in every image"
        height, width = inputs[i][1]
        back = boxes[0, :n] * np.array([rgb.shape[1] / width, rgb.shape[0] / height] * 2, dtype=np.float32)
        top = 5
        np.testing.assert_allclose(scores[0, :top], expected["scores"][:top].numpy(), atol=2e-3)
        np.testing.assert_array_equal(labels[0, :top], expected["labels"][:top].numpy())
        np.testing.assert_allclose(back[:top], expected["boxes"][:top].numpy(), atol=1.0)
