"""shorter-crop is torchvision's Resize(256) + CenterCrop(224) exactly, on the sizes that hit its ties.

torchvision truncates the longer side (``int(256 * long / short)``) and rounds the crop offset
with Python's ``round`` (halves to even); DALI's ``resize_shorter`` rounds the side and its crop
position 0.5 rounds halves up, one pixel apart on about half of real photos. The sizes below hit
both: a scaled longer side with a fraction >= 0.5 (640x427 -> 383.7) and odd crop margins
(383 - 224 = 159), in landscape and portrait.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import MODEL_REPOSITORY
from tests.support.modelconfigs import config_for
from tests.support.reference import (
    classification_input,
    shorter_crop_rgb,
    torchvision_crop_start,
    torchvision_resize_size,
)
from tests.support.runners import run_request
from triton_vision_models import geometry
from triton_vision_models import tensors as t
from triton_vision_models.dali_runner import DaliRunner

# (width, height) of real photo sizes whose resize or crop lands on a tie.
TIE_SIZES = [(640, 427), (500, 333), (1024, 683), (427, 640), (333, 500), (683, 1024), (640, 480), (451, 300)]
RULE = geometry.ResizeRule(geometry.SHORTER_CROP, (224, 224), shorter=256)


def png_of_size(rgb: np.ndarray, width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).resize((width, height), Image.BICUBIC).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(("width", "height"), TIE_SIZES)
def test_the_geometry_rule_is_torchvisions_resize_and_centre_crop(width, height):
    resized_w, resized_h = torchvision_resize_size(width, height, 256)
    left, top = torchvision_crop_start(resized_w, resized_h, 224)
    placement = RULE.placement((height, width))
    assert placement.resized == (resized_h, resized_w)
    assert placement.offset == (-top, -left)


def test_the_reference_is_torchvision_itself():
    """tests.support.reference follows torchvision's code; torchvision, where installed, must agree pixel for pixel."""
    transforms = pytest.importorskip("torchvision.transforms")
    rng = np.random.default_rng(0)
    for width, height in TIE_SIZES:
        data = png_of_size(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), width, height)
        image = Image.open(io.BytesIO(data)).convert("RGB")
        theirs = np.asarray(transforms.CenterCrop(224)(transforms.Resize(256)(image)))
        np.testing.assert_array_equal(shorter_crop_rgb(data), theirs, err_msg=f"{width}x{height}")


# Pixel units (0..255) after undoing the normalisation: DALI's and Pillow's antialiased linear
# resizes differ by a level of rounding on some pixels; a crop one pixel off is far above it.
MEAN_TOLERANCE = 0.6


def pixel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a - b) * 255.0 * np.array(t.IMAGENET_STD, np.float32)[:, None, None]).mean())


@pytest.fixture(scope="module")
def runner() -> DaliRunner:
    return DaliRunner.from_config(config_for(MODEL_REPOSITORY / t.CLASSIFICATION_PREPROCESS))


@pytest.mark.parametrize(("width", "height"), TIE_SIZES)
def test_the_served_pipeline_crops_where_torchvision_does(runner, chelsea_rgb, width, height):
    data = png_of_size(chelsea_rgb, width, height)
    got = run_request(runner, {t.IMAGE: np.frombuffer(data, np.uint8)[None]})[t.PIXELS][0]
    want = classification_input(data)
    assert pixel_error(got, want) < MEAN_TOLERANCE
    # The test can fail: the same crop one pixel to the right or lower is far outside the tolerance.
    image = Image.open(io.BytesIO(data)).convert("RGB")
    new_w, new_h = torchvision_resize_size(width, height, 256)
    left, top = torchvision_crop_start(new_w, new_h, 224)
    resized = np.asarray(image.resize((new_w, new_h), Image.BILINEAR)).astype(np.float32) / 255.0
    for dy, dx in ((0, 1), (1, 0)):
        shifted = resized[top + dy : top + dy + 224, left + dx : left + dx + 224]
        shifted = ((shifted - np.array(t.IMAGENET_MEAN, np.float32)) / np.array(t.IMAGENET_STD, np.float32)).transpose(
            2, 0, 1
        )
        assert pixel_error(got, shifted) > 3 * MEAN_TOLERANCE, (dy, dx)
