from __future__ import annotations

import numpy as np
import pytest

from tests.images import accepted_images, png_header_only, refused_images
from triton_vision_models import tensors as t
from triton_vision_models.errors import ImageRejectedError
from triton_vision_models.imageguard import ImageGuard, ImageLimits, check_image, encoded_length, read_header
from triton_vision_models.spec import RequestData


@pytest.fixture(scope="module")
def rgb(chelsea_rgb):
    return chelsea_rgb


def test_every_supported_kind_passes_with_its_declared_size(rgb):
    height, width = rgb.shape[:2]
    for name, data in accepted_images(rgb).items():
        header = check_image(data, ImageLimits())
        assert (header.width, header.height) == (width, height), name


@pytest.mark.parametrize("name", sorted(refused_images(np.zeros((8, 8, 3), np.uint8))))
def test_refused_kinds_get_a_message_naming_the_problem(rgb, name):
    data, phrase = refused_images(rgb)[name]
    with pytest.raises(ImageRejectedError) as info:
        check_image(data, ImageLimits())
    assert phrase in str(info.value)


def test_progressive_and_cmyk_are_recognised(rgb):
    images = accepted_images(rgb)
    assert "progressive" in read_header(images["progressive JPEG"]).detail
    assert "CMYK" in read_header(images["CMYK JPEG"]).detail
    assert "16-bit" in read_header(images["16-bit PNG"]).detail


def test_pixel_limit_refuses_a_bomb_before_decoding():
    limits = ImageLimits(max_pixels=1_000_000)
    check_image(png_header_only(1000, 1000), limits)
    with pytest.raises(ImageRejectedError, match="1000x1001 = 1001000 pixels is above the limit of 1000000"):
        check_image(png_header_only(1000, 1001), limits)


def test_byte_limit_is_checked_first():
    with pytest.raises(ImageRejectedError, match="101 bytes is above the limit of 100"):
        check_image(b"\xff\xd8\xff" + b"\x01" * 98, ImageLimits(max_bytes=100))


def test_encoded_length_ignores_zero_padding_only_at_the_end():
    assert encoded_length(np.array([1, 0, 2, 0, 0], np.uint8)) == 3
    assert encoded_length(np.zeros(4, np.uint8)) == 0


def test_guard_refuses_only_the_request_with_the_bad_image_and_names_its_index(rgb):
    images = accepted_images(rgb)
    good = np.frombuffer(images["RGB PNG"], np.uint8)[None]
    jpeg = images["baseline JPEG"]
    mixed = np.zeros((2, len(jpeg)), np.uint8)
    mixed[0, : len(jpeg)] = np.frombuffer(jpeg, np.uint8)  # row 1 stays all zeros: an empty image
    out = ImageGuard(ImageLimits())([RequestData({t.IMAGE: good}), RequestData({t.IMAGE: mixed})])
    assert out[0][t.CHECKED_IMAGE] is good
    assert isinstance(out[1], ImageRejectedError)
    assert "image 1: empty" in str(out[1])
