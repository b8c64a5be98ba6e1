"""The detection DALI pipeline (CPU) against the ONNX model zoo Faster R-CNN's preprocessing, as its README
writes it (tests/support/detection.py: Pillow and NumPy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY, shared_path
from tests.support.detection import ZOO_MEAN_BGR, bright_rectangle_image, encode, zoo_reference_preprocess
from tests.support.modelconfigs import config_for
from tests.support.runners import run_request
from triton_vision_models import tensors as t
from triton_vision_models.dali_runner import DaliRunner


@pytest.fixture(scope="module")
def runner() -> DaliRunner:
    return DaliRunner.from_config(config_for(MODEL_REPOSITORY / t.DETECTION_PREPROCESS))


def run_one(runner: DaliRunner, data: bytes) -> dict[str, np.ndarray]:
    out = run_request(runner, {t.IMAGE: np.frombuffer(data, dtype=np.uint8)[None]})
    return {name: value[0] for name, value in out.items()}


@pytest.mark.parametrize(
    "height, width, expected, padded",
    [
        (491, 640, (800, 1042), (800, 1056)),  # shorter side to 800: 640 * 800 / 491 = 1042.77 -> 1042
        (389, 517, (800, 1063), (800, 1088)),  # 517 * 800 / 389 = 1063.24
        (601, 1999, (400, 1333), (416, 1344)),  # longer side limits: 1333 / 1999 = 0.66683; 601 * that = 400.77
        (800, 600, (1066, 800), (1088, 800)),  # portrait: 800 * 800 / 600 = 1066.67
        (1000, 1000, (800, 800), (800, 800)),  # downscale, already a multiple of 32
    ],
)
def test_resize_follows_the_zoo_rule_and_pads_to_multiples_of_32(runner, height, width, expected, padded):
    out = run_one(runner, encode(np.full((height, width, 3), 90, np.uint8), ".png"))
    assert out[t.ORIGINAL_SIZE].tolist() == [height, width]
    assert out[t.RESIZED_SIZE].tolist() == list(expected)
    assert out[t.PIXELS].shape == (3, *padded) and out[t.PIXELS].dtype == np.float32
    h, w = expected
    assert not out[t.PIXELS][:, h:].any() and not out[t.PIXELS][:, :, w:].any(), "zero padding (the mean colour)"
    np.testing.assert_allclose(out[t.PIXELS][:, 0, 0], 90 - np.array(ZOO_MEAN_BGR), atol=1e-3)


@pytest.mark.parametrize("photo", ["persons.jpg", "kitten.jpg"])
def test_pixels_match_the_zoo_readme_reference_on_a_real_photo(runner, photo):
    import cv2

    data = shared_path(f"images/{photo}").read_bytes()
    out = run_one(runner, data)
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    reference, size = zoo_reference_preprocess(rgb)
    assert out[t.RESIZED_SIZE].tolist() == list(size)
    assert out[t.PIXELS].shape == reference.shape
    error = np.abs(out[t.PIXELS] - reference)  # in 0..255 pixel units (std 1)
    # DALI's and Pillow's decoders and bilinear kernels differ by a level or two (Pillow also rounds its
    # resize to 8 bits); a channel swap or a one-pixel shift gives a mean error above 10.
    assert error.mean() < 1.0, error.mean()
    assert np.percentile(error, 99) < 4.0, np.percentile(error, 99)


def test_channels_are_bgr_minus_the_zoo_mean():
    """A pure red image: channel 0 of the input is blue (0 - 102.98), channel 2 red (255 - 122.77)."""
    runner = DaliRunner.from_config(config_for(MODEL_REPOSITORY / t.DETECTION_PREPROCESS))
    red = np.zeros((100, 120, 3), np.uint8)
    red[..., 0] = 255
    out = run_one(runner, encode(red, ".png"))
    h, w = out[t.RESIZED_SIZE].tolist()
    centre = out[t.PIXELS][:, h // 2, w // 2]
    np.testing.assert_allclose(centre, [0 - ZOO_MEAN_BGR[0], 0 - ZOO_MEAN_BGR[1], 255 - ZOO_MEAN_BGR[2]], atol=1e-3)


def test_bright_rectangle_lands_where_the_scale_puts_it(runner):
    image = bright_rectangle_image(389, 517, (101, 57, 333, 290))
    out = run_one(runner, encode(image, ".png"))
    blue = out[t.PIXELS][0]
    rows = np.flatnonzero((blue > 50).any(axis=1))
    cols = np.flatnonzero((blue > 50).any(axis=0))
    scale_y, scale_x = 800 / 389, 1063 / 517
    assert math.isclose(rows[0], 57 * scale_y, abs_tol=1.0) and math.isclose(rows[-1] + 1, 290 * scale_y, abs_tol=1.0)
    assert math.isclose(cols[0], 101 * scale_x, abs_tol=1.0) and math.isclose(cols[-1] + 1, 333 * scale_x, abs_tol=1.0)
