"""The bench's reference preprocessing (the client-side-preprocessing baseline, in-process) against
what the ensembles compute: each task's real DALI pipeline (CPU), and the tests' own Pillow/OpenCV
references."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY
from tests.support.detection import zoo_reference_preprocess as detection_reference
from tests.support.modelconfigs import config_for
from tests.support.reference import classification_input
from tests.support.runners import run_request
from tests.support.segmentation import reference_input as segmentation_reference
from triton_vision_bench import preprocess
from triton_vision_models import tensors as t
from triton_vision_models.dali_runner import DaliRunner

# Mean error in pixel units (0..255, normalisation undone). OpenCV's area and linear resizes are
# not DALI's antialiased linear one: 0.1-0.35 levels apart on these photos; the image one pixel
# off is 1.9-6.8 away, a channel swap 18-35.
PIXEL_TOLERANCE = 1.0
PIPELINES = {
    t.CLASSIFICATION: t.CLASSIFICATION_PREPROCESS,
    t.DETECTION: t.DETECTION_PREPROCESS,
    t.SEGMENTATION: t.SEGMENTATION_PREPROCESS,
}
STD = np.array(t.IMAGENET_STD, dtype=np.float32)[:, None, None] * 255
PIXEL_STD = {t.DETECTION: 1.0}  # the detector's input is in pixel units already (its mean subtracted, std 1)


def encode(rgb: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def pixel_error(a: np.ndarray, b: np.ndarray, task: str = t.CLASSIFICATION) -> float:
    return float((np.abs(a - b) * PIXEL_STD.get(task, STD)).mean())


@pytest.fixture(scope="module")
def photos(chelsea_rgb) -> dict[str, bytes]:
    """A landscape PNG (451x300), a portrait JPEG and a small PNG that every task enlarges."""
    return {
        "chelsea.png": encode(chelsea_rgb, ".png"),
        "portrait.jpg": encode(np.ascontiguousarray(chelsea_rgb.transpose(1, 0, 2)), ".jpg"),
        "small.png": encode(cv2.resize(chelsea_rgb, (150, 100), interpolation=cv2.INTER_AREA), ".png"),
    }


@pytest.fixture(scope="module")
def pipelines() -> dict[str, DaliRunner]:
    return {task: DaliRunner.from_config(config_for(MODEL_REPOSITORY / model)) for task, model in PIPELINES.items()}


def spec(task: str):
    from triton_vision_models.repository import ModelRepository

    return preprocess.spec_of(ModelRepository.load(MODEL_REPOSITORY), task)


@pytest.mark.parametrize("task", list(PIPELINES))
def test_reference_gives_what_the_ensembles_dali_pipeline_gives(task, photos, pipelines):
    for name, data in photos.items():
        ours = preprocess.tensors(data, spec(task))
        theirs = run_request(pipelines[task], {t.IMAGE: np.frombuffer(data, np.uint8)[None]})
        for output in theirs:
            assert ours[output].shape == (1, *theirs[output].shape[1:]), (name, output)
            assert ours[output].dtype == theirs[output].dtype, (name, output)
        if t.RESIZED_SIZE in theirs:
            assert ours[t.RESIZED_SIZE].tolist() == theirs[t.RESIZED_SIZE].tolist(), name
            assert ours[t.ORIGINAL_SIZE].tolist() == theirs[t.ORIGINAL_SIZE].tolist(), name
        assert pixel_error(ours[t.PIXELS][0], theirs[t.PIXELS][0], task) < PIXEL_TOLERANCE, name


def test_classification_is_the_pillow_reference(photos):
    for name, data in photos.items():
        ours = preprocess.tensors(data, spec(t.CLASSIFICATION))[t.PIXELS][0]
        assert pixel_error(ours, classification_input(data)) < PIXEL_TOLERANCE, name


def test_detection_size_and_pixels_follow_the_model_zoos_rule(photos):
    for name, data in photos.items():
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        pixels, size = detection_reference(rgb)
        ours = preprocess.tensors(data, spec(t.DETECTION))
        assert ours[t.RESIZED_SIZE].tolist() == [list(size)], name
        assert ours[t.PIXELS][0].shape == pixels.shape, name  # padded to multiples of 32
        # OpenCV's area/linear resize vs Pillow's bilinear (rounded to 8 bits): under a level on average
        assert pixel_error(ours[t.PIXELS][0], pixels, t.DETECTION) < PIXEL_TOLERANCE, name


def test_segmentation_letterbox_matches_the_reference_and_pads_with_zeros(photos):
    for name, data in photos.items():
        pixels, _, (height, width) = segmentation_reference(data)
        ours = preprocess.tensors(data, spec(t.SEGMENTATION))[t.PIXELS][0]
        assert pixel_error(ours[:, :height, :width], pixels[:, :height, :width]) < PIXEL_TOLERANCE, name
        padding = np.ones(ours.shape, dtype=bool)
        padding[:, :height, :width] = False
        assert np.array_equal(ours[padding], pixels[padding]) and not ours[padding].any(), name


def test_an_ensemble_without_a_spec_cannot_be_preprocessed_in_process(tmp_path):
    from tests.conftest import ensemble_repository
    from triton_vision_bench.messages import BenchUsageError
    from triton_vision_models.repository import ModelRepository

    root = ensemble_repository(tmp_path / "repo", t.CLASSIFICATION)
    (root / t.CLASSIFICATION / "spec.toml").unlink()
    with pytest.raises(BenchUsageError, match="ensemble 'classification' has no spec.toml"):
        preprocess.spec_of(ModelRepository.load(root), t.CLASSIFICATION)


def test_normalisation_is_imagenets_mean_and_std():
    grey = np.full((300, 400, 3), 200, dtype=np.uint8)
    pixels = preprocess.tensors(encode(grey, ".png"), spec(t.CLASSIFICATION))[t.PIXELS][0]
    expected = (200 / 255 - np.array(t.IMAGENET_MEAN)) / np.array(t.IMAGENET_STD)
    for channel in range(3):
        assert np.unique(pixels[channel]).tolist() == pytest.approx([expected[channel]], abs=1e-5)
