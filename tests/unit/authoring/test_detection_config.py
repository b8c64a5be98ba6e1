"""The detection configs agree with the tensors module and the model zoo Faster R-CNN's tensor signature;
the torchvision exports are catalogued for their own ensemble's directory."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from tests.conftest import MODEL_REPOSITORY
from tests.support.modelconfigs import config_for, load_config
from triton_vision_authoring import models as model_files
from triton_vision_models import tensors as t
from triton_vision_models.model_config import RequestData
from triton_vision_models.onnx_runner import OnnxRunner


def test_detection_names_agree_with_the_tensors_module():
    ensemble = load_config(MODEL_REPOSITORY / t.DETECTION)
    assert [o.name for o in ensemble.output] == [t.BOXES, t.SCORES, t.CLASS_IDS, t.LABELS, t.COUNT]
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == [t.DETECTION_INFER, t.DETECTION_POSTPROCESS]
    assert [s.model_name for s in load_config(MODEL_REPOSITORY / t.DETECTION_INFER).ensemble_scheduling.step] == [
        t.IMAGE_GUARD,
        t.DETECTION_PREPROCESS,
        t.DETECTOR,
    ]
    detector = load_config(MODEL_REPOSITORY / t.DETECTOR)
    assert detector.platform == "onnxruntime_onnx"
    assert [i.name for i in detector.input] == [t.DETECTOR_INPUT]
    assert [o.name for o in detector.output] == [t.DETECTOR_BOXES, t.DETECTOR_LABELS, t.DETECTOR_SCORES]
    assert [o.name for o in load_config(MODEL_REPOSITORY / t.DETECTION_PREPROCESS).output] == [
        t.PIXELS,
        t.ORIGINAL_SIZE,
        t.RESIZED_SIZE,
    ]
    assert [i.name for i in load_config(MODEL_REPOSITORY / t.DETECTION_POSTPROCESS).input] == [
        t.RAW_BOXES,
        t.RAW_SCORES,
        t.RAW_LABELS,
        t.ORIGINAL_SIZE,
        t.RESIZED_SIZE,
    ]


def test_every_step_takes_one_image_and_the_detector_reads_its_outputs_by_their_own_names():
    for model in (t.DETECTION, t.DETECTION_INFER, t.DETECTION_PREPROCESS, t.DETECTOR, t.DETECTION_POSTPROCESS):
        assert load_config(MODEL_REPOSITORY / model).max_batch_size == t.DETECTION_MAX_BATCH == 1, model
    ensemble = load_config(MODEL_REPOSITORY / t.DETECTION_INFER)
    (detector_step,) = [s for s in ensemble.ensemble_scheduling.step if s.model_name == t.DETECTOR]
    (preprocess_step,) = [s for s in ensemble.ensemble_scheduling.step if s.model_name == t.DETECTION_PREPROCESS]
    assert dict(detector_step.input_map) == {t.DETECTOR_INPUT: preprocess_step.output_map[t.PIXELS]}
    assert dict(detector_step.output_map) == {
        t.DETECTOR_BOXES: t.RAW_BOXES,
        t.DETECTOR_SCORES: t.RAW_SCORES,
        t.DETECTOR_LABELS: t.RAW_LABELS,
    }


def test_the_detector_is_the_pinned_model_zoo_file():
    entry = model_files.CATALOGUE[t.DETECTOR]
    (download,) = entry.downloads
    assert download.url == (
        "https://github.com/onnx/models/raw/main/validated/vision/object_detection_segmentation/faster-rcnn/model/"
        "FasterRCNN-12.onnx"
    )
    # The oid of FasterRCNN-12.onnx's Git LFS pointer in github.com/onnx/models (size 176713194).
    assert download.sha256 == "789104f5a47f008450a37e02da8a8d3642766ed10d91238312b1532fe72789a6"
    assert entry.unbatched and entry.convert is None and entry.build_stand_in is None
    labels = (MODEL_REPOSITORY / t.DETECTOR / t.DETECTOR_LABEL_FILE).read_text().splitlines()
    assert len(labels) == 81 and labels[0] == "__background" and labels[1] == "person" and labels[80] == "toothbrush"


def test_both_torchvision_architectures_serve_from_the_example_ensembles_directory():
    for key in (t.TORCHVISION_DETECTOR, t.TORCHVISION_DETECTOR_MOBILENET):
        entry = model_files.CATALOGUE[key]
        assert entry.name == t.TORCHVISION_DETECTOR and entry.convert is not None
        (download,) = entry.downloads
        assert download.url.endswith(".pth") and len(download.sha256) == 64
        # torchvision names its weight files <name>-<first 8 hex digits of the sha256>.pth
        assert download.url.rsplit("-", 1)[1] == download.sha256[:8] + ".pth"


class RecordingSession:
    """Stands in for an onnxruntime session; records the batch sizes it is given."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def get_inputs(self):
        return [SimpleNamespace(name=t.DETECTOR_INPUT)]

    def get_outputs(self):
        return [SimpleNamespace(name=n) for n in (t.DETECTOR_BOXES, t.DETECTOR_LABELS, t.DETECTOR_SCORES)]

    def run(self, names, inputs):
        n = inputs[t.DETECTOR_INPUT].shape[0]
        self.batches.append(n)
        return [np.zeros((n, 7, 4), np.float32), np.zeros((n, 7), np.int64), np.zeros((n, 7), np.float32)]


def test_onnx_runner_runs_the_detector_one_image_at_a_time():
    session = RecordingSession()
    runner = OnnxRunner(config_for(MODEL_REPOSITORY / t.DETECTOR), session)
    request = RequestData(inputs={t.DETECTOR_INPUT: np.zeros((1, 3, 32, 64), np.float32)})
    results = runner([request, request, request])
    assert session.batches == [1, 1, 1]
    assert [r[t.DETECTOR_BOXES].shape for r in results] == [(1, 7, 4)] * 3
