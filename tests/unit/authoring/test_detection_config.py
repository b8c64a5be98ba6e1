"""The detection configs agree with the tensors module and the batched tensor signature."""

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
    assert [i.name for i in detector.input] == [t.DETECTOR_INPUT, t.DETECTOR_IMAGE_SIZES]
    assert [o.name for o in detector.output] == [
        t.DETECTOR_BOXES,
        t.DETECTOR_SCORES,
        t.DETECTOR_LABELS,
        t.DETECTOR_COUNT,
    ]
    assert [o.name for o in load_config(MODEL_REPOSITORY / t.DETECTION_PREPROCESS).output] == [
        t.PIXELS,
        t.ORIGINAL_SIZE,
        t.RESIZED_SIZE,
    ]
    assert [i.name for i in load_config(MODEL_REPOSITORY / t.DETECTION_POSTPROCESS).input] == [
        t.RAW_BOXES,
        t.RAW_SCORES,
        t.RAW_LABELS,
        t.RAW_COUNT,
        t.ORIGINAL_SIZE,
        t.RESIZED_SIZE,
    ]


def test_the_detector_and_its_ensemble_take_a_batch_and_the_detector_gets_the_resized_sizes():
    assert load_config(MODEL_REPOSITORY / t.DETECTOR).max_batch_size == t.DETECTION_MAX_BATCH == 4
    assert load_config(MODEL_REPOSITORY / t.DETECTION).max_batch_size == t.DETECTION_MAX_BATCH
    ensemble = load_config(MODEL_REPOSITORY / t.DETECTION_INFER)
    assert ensemble.max_batch_size == t.DETECTION_MAX_BATCH
    (detector_step,) = [s for s in ensemble.ensemble_scheduling.step if s.model_name == t.DETECTOR]
    (preprocess_step,) = [s for s in ensemble.ensemble_scheduling.step if s.model_name == t.DETECTION_PREPROCESS]
    assert detector_step.input_map[t.DETECTOR_IMAGE_SIZES] == preprocess_step.output_map[t.RESIZED_SIZE]


def test_both_catalogue_architectures_serve_from_the_faster_rcnn_directory():
    for key in (t.DETECTOR, t.DETECTOR_MOBILENET):
        entry = model_files.CATALOGUE[key]
        assert entry.name == t.DETECTOR and entry.convert is not None
        (download,) = entry.downloads
        assert download.url.endswith(".pth") and len(download.sha256) == 64
        # torchvision names its weight files <name>-<first 8 hex digits of the sha256>.pth
        assert download.url.rsplit("-", 1)[1] == download.sha256[:8] + ".pth"


class RecordingSession:
    """Stands in for an onnxruntime session; records the batch sizes it is given."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def get_inputs(self):
        return [SimpleNamespace(name=n) for n in (t.DETECTOR_INPUT, t.DETECTOR_IMAGE_SIZES)]

    def get_outputs(self):
        names = (t.DETECTOR_BOXES, t.DETECTOR_SCORES, t.DETECTOR_LABELS, t.DETECTOR_COUNT)
        return [SimpleNamespace(name=n) for n in names]

    def run(self, names, inputs):
        n = inputs[t.DETECTOR_INPUT].shape[0]
        self.batches.append(n)
        return [
            np.zeros((n, 100, 4), np.float32),
            np.zeros((n, 100), np.float32),
            np.zeros((n, 100), np.int64),
            np.zeros((n, 1), np.int64),
        ]


def test_onnx_runner_never_batches_beyond_max_batch_size():
    session = RecordingSession()
    runner = OnnxRunner(config_for(MODEL_REPOSITORY / t.DETECTOR), session)

    def request(images: int) -> RequestData:
        return RequestData(
            inputs={
                t.DETECTOR_INPUT: np.zeros((images, 3, 32, 48), np.float32),
                t.DETECTOR_IMAGE_SIZES: np.tile(np.array([[32, 48]], np.int64), (images, 1)),
            }
        )

    results = runner([request(3), request(2), request(1), request(4)])
    assert all(size <= 4 for size in session.batches) and sum(session.batches) == 10
    assert [r[t.DETECTOR_BOXES].shape for r in results] == [(3, 100, 4), (2, 100, 4), (1, 100, 4), (4, 100, 4)]
