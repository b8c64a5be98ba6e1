"""The segmentation DALI pipeline (CPU): letterbox sizes, padding, colour order, vs an OpenCV reference."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY, shared_path
from tests.support.modelconfigs import config_for
from tests.support.runners import Outputs, run_request
from tests.support.segmentation import png, reference_input, synthetic
from triton_vision_client.images import pack_images
from triton_vision_models import tensors as t
from triton_vision_models.dali_runner import DaliRunner

STD_255 = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None] * 255.0


@pytest.fixture(scope="module")
def runner() -> DaliRunner:
    return DaliRunner.from_config(config_for(MODEL_REPOSITORY / t.SEGMENTATION_PREPROCESS))


def run(runner: DaliRunner, images: list[bytes]) -> Outputs:
    return run_request(runner, {t.IMAGE: pack_images(images)})


def test_sizes_are_the_letterbox_rule_for_odd_and_huge_images(runner):
    # (H, W) -> longer side 520, the other rounded half up: 389 * 520 / 517 = 391.26 -> 391,
    # 3000 * 520 / 4000 = 390, 5 * 520 / 1040 = 2.5 -> 3.
    cases = {(517, 389): (520, 391), (389, 520): (389, 520), (3000, 4000): (390, 520), (5, 1040): (3, 520)}
    out = run(runner, [png(np.zeros((h, w, 3), np.uint8)) for h, w in cases])
    np.testing.assert_array_equal(out[t.ORIGINAL_SIZE], list(cases))
    np.testing.assert_array_equal(out[t.RESIZED_SIZE], list(cases.values()))
    assert out[t.PIXELS].shape == (4, 3, 520, 520) and out[t.PIXELS].dtype == np.float32


def test_padding_is_zero_after_normalisation_and_the_image_sits_top_left(runner):
    image, _ = synthetic(389, 520)
    pixels = run(runner, [png(image)])[t.PIXELS][0]
    assert (pixels[:, 389:, :] == 0).all()
    gray = (128 / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(pixels[:, 388, 519], gray, atol=1e-4)


def test_pipeline_outputs_rgb_not_bgr(runner):
    red = np.zeros((300, 400, 3), dtype=np.uint8)
    red[..., 0] = 255
    pixels = run(runner, [png(red)])[t.PIXELS][0]
    np.testing.assert_allclose(pixels[0, :390], (1.0 - 0.485) / 0.229, atol=1e-3)
    np.testing.assert_allclose(pixels[2, :390], (0.0 - 0.406) / 0.225, atol=1e-3)


def test_pipeline_matches_the_opencv_reference_on_a_real_photo(runner):
    data = shared_path("images/persons.jpg").read_bytes()
    out = run(runner, [data])
    want, original, resized = reference_input(data)
    assert tuple(out[t.ORIGINAL_SIZE][0]) == original == (491, 640)
    assert tuple(out[t.RESIZED_SIZE][0]) == resized == (399, 520)
    error = np.abs(out[t.PIXELS][0] - want) * STD_255  # in 0..255 pixel units
    assert error.mean() < 2.0 and np.percentile(error, 99) < 15.0, (error.mean(), np.percentile(error, 99))
