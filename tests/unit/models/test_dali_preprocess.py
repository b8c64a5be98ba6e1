"""The classification DALI pipeline (CPU) against an independent Pillow/NumPy reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY, shared_path
from tests.support.modelconfigs import config_for
from tests.support.reference import classification_input
from tests.support.runners import run_request
from triton_vision_models import tensors as t
from triton_vision_models.dali_runner import DaliRunner
from triton_vision_models.model_config import RequestData

# Pixel units (0..255) after undoing the normalisation: DALI's and Pillow's antialiased
# linear resizes differ by one level of rounding on some pixels; a channel swap or a crop
# shifted by one pixel gives a mean error above 15 (persons.jpg).
MEAN_TOLERANCE = 0.5
P99_TOLERANCE = 1.5


@pytest.fixture(scope="module")
def runner() -> DaliRunner:
    return DaliRunner.from_config(config_for(MODEL_REPOSITORY / t.CLASSIFICATION_PREPROCESS))


def encode(rgb: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def run_one(runner: DaliRunner, data: bytes, padding: int = 0) -> np.ndarray:
    row = np.frombuffer(data + b"\x00" * padding, dtype=np.uint8)[None]
    return run_request(runner, {t.IMAGE: row})[t.PIXELS][0]


def pixel_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) * 255.0 * np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]


def photos(chelsea_rgb) -> dict[str, bytes]:
    return {"chelsea.png": encode(chelsea_rgb, ".png"), "chelsea.jpg": encode(chelsea_rgb, ".jpg")}


def test_pipeline_matches_reference_on_real_photos(runner, chelsea_rgb):
    images = photos(chelsea_rgb)
    for name in ("kitten.jpg", "dog.jpg", "persons.jpg"):
        try:
            images[name] = shared_path(f"images/{name}").read_bytes()
        except pytest.skip.Exception:
            pass
    for name, data in images.items():
        got = run_one(runner, data)
        assert got.shape == (3, 224, 224) and got.dtype == np.float32
        error = pixel_error(got, classification_input(data))
        assert error.mean() < MEAN_TOLERANCE, (name, error.mean())
        assert np.percentile(error, 99) < P99_TOLERANCE, (name, np.percentile(error, 99))


def test_pipeline_outputs_rgb_not_bgr(runner):
    # A pure red image: channel 0 (R) is high, channel 2 (B) is low after normalisation.
    red = np.zeros((300, 400, 3), dtype=np.uint8)
    red[..., 0] = 255
    got = run_one(runner, encode(red, ".png"))
    np.testing.assert_allclose(got[0], (1.0 - 0.485) / 0.229, atol=1e-3)
    np.testing.assert_allclose(got[2], (0.0 - 0.406) / 0.225, atol=1e-3)


def test_zero_padding_after_the_file_changes_nothing(runner, chelsea_rgb):
    for data in photos(chelsea_rgb).values():
        np.testing.assert_array_equal(run_one(runner, data), run_one(runner, data, padding=5000))


def test_a_batch_of_differently_sized_images_equals_one_by_one(runner, chelsea_rgb):
    small = encode(cv2.resize(chelsea_rgb, (233, 171)), ".jpg")
    big = encode(chelsea_rgb, ".png")
    longest = max(len(small), len(big))
    batch = np.zeros((2, longest), dtype=np.uint8)
    batch[0, : len(small)] = np.frombuffer(small, np.uint8)
    batch[1, : len(big)] = np.frombuffer(big, np.uint8)
    (out,) = runner([RequestData(inputs={t.IMAGE: batch})])
    np.testing.assert_array_equal(out[t.PIXELS][0], run_one(runner, small))
    np.testing.assert_array_equal(out[t.PIXELS][1], run_one(runner, big))


def test_requests_of_one_execution_get_their_own_images_back(runner, chelsea_rgb):
    a = np.frombuffer(encode(chelsea_rgb, ".png"), np.uint8)[None]
    b = np.frombuffer(encode(chelsea_rgb[::-1].copy(), ".png"), np.uint8)[None]
    out_a, out_b = runner([RequestData(inputs={t.IMAGE: a}), RequestData(inputs={t.IMAGE: b})])
    assert not np.array_equal(out_a[t.PIXELS], out_b[t.PIXELS])
    np.testing.assert_array_equal(out_a[t.PIXELS][0], run_one(runner, a.tobytes()))
