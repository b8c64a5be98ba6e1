from __future__ import annotations

import numpy as np
import pytest

from tests.support.images import accepted_images, png_header_only, refused_images
from triton_vision_models import tensors as t
from triton_vision_models.errors import ImageRejectedError
from triton_vision_models.imageguard import (
    ImageGuard,
    ImageLimits,
    check_image,
    declared_pixels,
    encoded_length,
    read_header,
    row_view,
)
from triton_vision_models.model_config import RequestData


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


def test_row_view_drops_zero_padding_only_at_the_end():
    assert bytes(row_view(np.array([1, 0, 2, 0, 0], np.uint8))) == b"\x01\x00\x02"
    assert bytes(row_view(np.array([1, 0, 2], np.uint8))) == b"\x01\x00\x02"
    assert bytes(row_view(np.zeros(4, np.uint8))) == b""
    assert bytes(row_view(np.zeros(0, np.uint8))) == b""


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


# -- the request's pixel budget -------------------------------------------------------------------
def padded(images: list[bytes]) -> np.ndarray:
    batch = np.zeros((len(images), max(map(len, images))), np.uint8)
    for row, data in enumerate(images):
        batch[row, : len(data)] = np.frombuffer(data, np.uint8)
    return batch


def test_request_whose_images_together_exceed_the_budget_is_refused_naming_sum_and_limit():
    limits = ImageLimits(max_request_pixels=2_500_000)
    guard = ImageGuard(limits)
    (out,) = guard([RequestData({t.IMAGE: padded([png_header_only(1000, 1000)] * 3)})])
    assert isinstance(out, ImageRejectedError)
    assert "3 images declare 3000000 pixels in total, above the limit of 2500000 per request" in str(out)


def test_request_exactly_at_the_budget_passes_and_each_image_alone_is_not_summed_across_requests():
    guard = ImageGuard(ImageLimits(max_request_pixels=2_000_000))
    two = RequestData({t.IMAGE: padded([png_header_only(1000, 1000)] * 2)})
    out = guard([two, two])  # one execution, two requests: the budget is per request
    assert not any(isinstance(o, Exception) for o in out)


def test_default_request_budget_refuses_the_32_image_bomb_of_49_megapixel_pngs_but_not_32_photos():
    bomb = padded([png_header_only(7000, 7000)] * 32)
    (out,) = ImageGuard(ImageLimits())([RequestData({t.IMAGE: bomb})])
    assert isinstance(out, ImageRejectedError)
    assert f"{32 * 7000 * 7000} pixels in total" in str(out)
    photos = padded([png_header_only(3264, 2448)] * 32)  # 32 x 8 MP phone photos
    (ok,) = ImageGuard(ImageLimits())([RequestData({t.IMAGE: photos})])
    assert not isinstance(ok, Exception)


def test_guard_config_declares_the_limits_it_is_built_with():
    from tests.conftest import MODEL_REPOSITORY
    from tests.support.modelconfigs import config_for

    limits = ImageLimits.from_config(config_for(MODEL_REPOSITORY / t.IMAGE_GUARD))
    assert limits == ImageLimits()  # the config's values are the documented defaults


def test_declared_pixels_reads_the_header_and_gives_zero_for_unreadable_data():
    assert declared_pixels(np.frombuffer(png_header_only(640, 480) + b"\x00" * 9, np.uint8)) == 640 * 480
    assert declared_pixels(np.frombuffer(b"not an image", np.uint8)) == 0


# -- reading only what it must ---------------------------------------------------------------------
def jpeg_header_then_padding(rgb, row_bytes: int, fill: int = 0x55) -> np.ndarray:
    """A photo's JPEG header (up to its start of scan) followed by non-zero bytes: no end marker."""
    jpeg = accepted_images(rgb)["baseline JPEG"]
    head = jpeg[: jpeg.index(b"\xff\xda")]
    row = np.full(row_bytes, fill, np.uint8)
    row[: len(head)] = np.frombuffer(head, np.uint8)
    return row


def test_a_request_above_the_byte_limit_is_refused_from_its_shape_before_any_row_is_read():
    # 32 rows of 8 MB that are one byte in memory: reading any row would take seconds, not a check of the shape.
    batch = np.broadcast_to(np.zeros((1, 1), np.uint8), (32, 8 << 20))
    (out,) = ImageGuard(ImageLimits())([RequestData({t.IMAGE: batch})])
    assert isinstance(out, ImageRejectedError)
    assert str(out) == (
        "input 'IMAGE': the request is 32 rows of 8388608 bytes = 268435456 bytes (each row zero-padded to the "
        "longest image), above the limit of 67108864 bytes per request (send fewer images per request, or images "
        "of similar sizes together)"
    )


def test_a_row_without_an_end_marker_is_refused_in_place_without_copying_it(rgb):
    import tracemalloc

    batch = jpeg_header_then_padding(rgb, 8 << 20)[None]
    guard = ImageGuard(ImageLimits())
    tracemalloc.start()
    try:
        (out,) = guard([RequestData({t.IMAGE: batch})])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(out, ImageRejectedError)
    assert "image 0: truncated JPEG: no end-of-image marker after the image data" in str(out)
    assert peak < 1 << 20, (
        f"the guard allocated {peak} bytes to refuse an 8 MB row"
    )  # before: 72 MB (a copy, 8 M indices)


def test_data_after_the_end_marker_is_still_a_complete_jpeg(rgb):
    jpeg = accepted_images(rgb)["baseline JPEG"]
    with_trailer = jpeg + b"\x01camera trailer"
    assert check_image(with_trailer, ImageLimits()).format == "JPEG"
    assert check_image(memoryview(with_trailer), ImageLimits()).format == "JPEG"


def test_encoded_length_finds_the_end_across_blocks_of_padding():
    from triton_vision_models.imageguard import LENGTH_BLOCK

    row = np.zeros(3 * LENGTH_BLOCK + 5, np.uint8)
    row[LENGTH_BLOCK - 1] = 7
    assert encoded_length(row) == LENGTH_BLOCK
    row[2 * LENGTH_BLOCK] = 9
    assert encoded_length(row) == 2 * LENGTH_BLOCK + 1


@pytest.mark.parametrize(
    "values",
    [[], [0], [0, 0, 0], [5], [1, 0, 2], [1, 2, 0, 0], [0, 0, 3, 0], [9] * 70_000, [9] * 70_000 + [0] * 3],
)
def test_encoded_length_is_the_row_without_its_trailing_zeros(values):
    row = np.array(values, np.uint8)
    assert encoded_length(row) == len(row.tobytes().rstrip(b"\0"))  # the rule, written independently
