"""The segmentation ensemble end to end on the real tritonserver.

Known answers: a stand-in FCN labels pixels by colour (red -> person, green -> cat), fed synthetic
PNGs with coloured rectangles, so a mask shifted by one row or with transposed axes fails.
Any weights: the served mask of a real photo equals an in-process ONNX Runtime run of the same
model file with the OpenCV/NumPy reference preprocessing.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import shared_path
from tests.support.segmentation import (
    CAT,
    PERSON,
    RED,
    mismatches_away_from_edges,
    png,
    reference_input,
    reference_mask,
    region_offsets,
    synthetic,
)
from triton_vision_client.client import ClientError, VisionClient
from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def known_answer_client(segmentation_known_answer_server):
    with VisionClient(segmentation_known_answer_server.options.grpc_url, "grpc") as client:
        yield client


def test_masks_of_a_batch_of_odd_sized_images_equal_the_known_regions(known_answer_client):
    # 389x520 needs no resize: exact. 517x389 is resized to 520x391 and back: exact but where the
    # upscale blends a block's edge pixels (the colour rule then reads a corner pixel as background).
    (wide, wide_expected), (tall, tall_expected) = synthetic(389, 520), synthetic(517, 389)
    first, second = known_answer_client.segment([png(wide), png(tall)])
    assert first.mask.shape == (389, 520) and second.mask.shape == (517, 389)
    np.testing.assert_array_equal(first.mask, wide_expected)
    assert mismatches_away_from_edges(second.mask, tall_expected, band=1) == 0
    assert np.count_nonzero(second.mask != tall_expected) <= 8  # a few corner pixels at most
    assert first.fractions[PERSON] == pytest.approx(np.mean(wide_expected == PERSON), abs=1e-6)
    assert first.fractions[CAT] == pytest.approx(np.mean(wide_expected == CAT), abs=1e-6)
    assert first.labels[PERSON] == "person" and first.overlay_png is None
    # The comparison is sharp: one row of shift, or the axes swapped, fails it.
    assert np.count_nonzero(np.roll(second.mask, 1, axis=0) != tall_expected) > 300
    assert second.mask.T.shape != tall_expected.shape


def test_downscaled_image_keeps_its_regions_and_gets_an_overlay(known_answer_client):
    image, expected = synthetic(1301, 999)  # working size 520x399, a scale of 0.4
    (result,) = known_answer_client.segment([png(image)], overlay=True)
    assert result.mask.shape == (1301, 999)
    assert mismatches_away_from_edges(result.mask, expected, band=2) == 0
    for rows, cols in region_offsets(result.mask, expected):
        # one working pixel is 2.5 original pixels: boundaries move by at most half of it
        assert abs(rows) <= 1.25 and abs(cols) <= 1.25
    overlay = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(result.overlay_png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    assert overlay.shape == (1301, 999, 3)
    inside_red = (int(0.2 * 1301), int(0.3 * 999))
    person_rgb = (192, 128, 128)
    assert tuple(overlay[inside_red]) == tuple((c + p + 1) // 2 for c, p in zip(RED, person_rgb, strict=True))


def test_an_invalid_overlay_parameter_is_refused(known_answer_client):
    image, _ = synthetic(40, 30)
    with pytest.raises(ClientError, match="overlay"):
        known_answer_client.infer(t.SEGMENTATION, [png(image)], (t.MASK,), {t.OVERLAY_PARAMETER: "maybe"})


def test_cli_segment_writes_an_indexed_mask_and_an_overlay(segmentation_known_answer_server, tmp_path, capsys):
    from triton_vision_cli.main import main

    image, expected = synthetic(389, 520)
    path = tmp_path / "shapes.png"
    path.write_bytes(png(image))
    url = segmentation_known_answer_server.options.grpc_url
    assert main(["segment", str(path), "--out", str(tmp_path / "out"), "--url", url]) == 0
    printed = capsys.readouterr().out
    assert "person" in printed and "cat" in printed and "background" in printed
    mask = Image.open(tmp_path / "out" / "shapes_mask.png")
    assert mask.mode == "P"
    np.testing.assert_array_equal(np.asarray(mask), expected)
    overlay = Image.open(io.BytesIO((tmp_path / "out" / "shapes_overlay.png").read_bytes()))
    assert overlay.size == (520, 389)


def test_served_mask_equals_an_in_process_onnx_run_on_a_real_photo(
    segmentation_fcn_server, segmentation_fcn_repository
):
    import onnxruntime as ort

    data = shared_path("images/persons.jpg").read_bytes()
    with VisionClient(segmentation_fcn_server.options.grpc_url, "grpc") as client:
        (served,) = client.segment([data])
        assert client.stand_in_warnings([t.SEGMENTER])  # random weights: said so
    pixels, original, resized = reference_input(data)
    session = ort.InferenceSession(
        str(segmentation_fcn_repository / t.SEGMENTER / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (logits,) = session.run([t.SEGMENTER_OUTPUT], {t.SEGMENTER_INPUT: pixels[None]})
    want = reference_mask(logits[0], original, resized)
    assert served.mask.shape == want.shape == (491, 640)
    assert len(np.unique(want)) >= 2, "a one-class answer would make the comparison empty"
    agreement = np.mean(served.mask == want)
    assert agreement >= 0.99, agreement
