"""The detection DALI pipeline (CPU) against torchvision's resize rule and an OpenCV reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY, shared_path
from tests.support.detection import bright_rectangle_image, encode, reference_preprocess
from tests.support.modelconfigs import config_for
from tests.support.runners import run_request
from triton_vision_models import tensors as t
from triton_vision_models.dali_runner import DaliRunner

STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None] * 255


@pytest.fixture(scope="module")
def runner() -> DaliRunner:
    return DaliRunner.from_config(config_for(MODEL_REPOSITORY / t.DETECTION_PREPROCESS))


def run_one(runner: DaliRunner, data: bytes) -> dict[str, np.ndarray]:
    out = run_request(runner, {t.IMAGE: np.frombuffer(data, dtype=np.uint8)[None]})
    return {name: value[0] for name, value in out.items()}


@pytest.mark.parametrize(
    "height, width, expected",
    [
        (491, 640, (800, 1042)),  # shorter side to 800: 640 * 800 / 491 = 1042.77 -> 1042
        (389, 517, (800, 1063)),  # 517 * 800 / 389 = 1063.24
        (601, 1999, (400, 1333)),  # longer side limits: 1333 / 1999 = 0.66683; 601 * that = 400.77
        (800, 600, (1066, 800)),  # portrait: 800 * 800 / 600 = 1066.67
        (1000, 1000, (800, 800)),  # downscale
    ],
)
def test_resize_follows_torchvisions_rule(runner, height, width, expected):
    out = run_one(runner, encode(np.full((height, width, 3), 90, np.uint8), ".png"))
    assert out[t.ORIGINAL_SIZE].tolist() == [height, width]
    assert out[t.RESIZED_SIZE].tolist() == list(expected)
    assert out[t.PIXELS].shape == (3, *expected) and out[t.PIXELS].dtype == np.float32


def test_pixels_match_the_opencv_reference_on_a_real_photo(runner):
    import cv2

    data = shared_path("images/persons.jpg").read_bytes()
    out = run_one(runner, data)
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    reference, size = reference_preprocess(rgb)
    assert out[t.RESIZED_SIZE].tolist() == list(size)
    error = np.abs(out[t.PIXELS] - reference[0]) * STD  # in 0..255 pixel units
    # DALI's and OpenCV's JPEG decoders and bilinear kernels differ by a level or two; a channel
    # swap or a one-pixel shift gives a mean error above 10.
    assert error.mean() < 1.0, error.mean()
    assert np.percentile(error, 99) < 4.0, np.percentile(error, 99)


def test_bright_rectangle_lands_where_the_scale_puts_it(runner):
    image = bright_rectangle_image(389, 517, (101, 57, 333, 290))
    out = run_one(runner, encode(image, ".png"))
    red = out[t.PIXELS][0]
    rows = np.flatnonzero((red > 0.5).any(axis=1))
    cols = np.flatnonzero((red > 0.5).any(axis=0))
    scale_y, scale_x = 800 / 389, 1063 / 517
    assert math.isclose(rows[0], 57 * scale_y, abs_tol=1.0) and math.isclose(rows[-1] + 1, 290 * scale_y, abs_tol=1.0)
    assert math.isclose(cols[0], 101 * scale_x, abs_tol=1.0) and math.isclose(cols[-1] + 1, 333 * scale_x, abs_tol=1.0)
