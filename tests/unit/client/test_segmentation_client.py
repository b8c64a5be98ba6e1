"""Client-side segmentation: cropping the padded batch, indexed PNG masks, text, the overlay's legend."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from triton_vision_client import records
from triton_vision_client.answers import Segmentation
from triton_vision_client.answers import split_segmentations as split_outputs
from triton_vision_client.jobs import ImageResult, as_source
from triton_vision_client.segmentation import add_legend, mask_png
from triton_vision_client.tasks import save_segment
from triton_vision_models import tensors as t

NAMES = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]


def outputs() -> dict[str, np.ndarray]:
    mask = np.full((2, 3, 4), 255, dtype=np.uint8)
    mask[0, :2, :4] = [[0, 0, 15, 15], [0, 0, 15, 15]]
    mask[1, :3, :1] = 8
    fractions = np.zeros((2, 21), np.float32)
    fractions[0, 0], fractions[0, 15], fractions[1, 8] = 0.5, 0.5, 1.0
    return {
        t.MASK: mask,
        t.MASK_SIZE: np.array([[2, 4], [3, 1]], np.int32),
        t.CLASS_FRACTIONS: fractions,
        t.LABELS: np.array([[n.encode() for n in NAMES]] * 2, dtype=np.object_),
        t.OVERLAY: np.array([[b"png-bytes"], [b""]], dtype=np.object_),
    }


def test_split_outputs_crops_each_mask_to_its_own_size():
    first, second = split_outputs(outputs())
    np.testing.assert_array_equal(first.mask, [[0, 0, 15, 15], [0, 0, 15, 15]])
    np.testing.assert_array_equal(second.mask, [[8], [8], [8]])
    assert first.overlay_png == b"png-bytes" and second.overlay_png is None
    assert first.labels[15] == "person"


def test_present_lists_the_classes_in_the_mask_largest_first():
    first, second = split_outputs(outputs())
    assert first.present() == [(0, "background", 0.5), (15, "person", 0.5)]
    assert second.present() == [(8, "cat", 1.0)]


def test_text_lists_each_class_present_and_a_tiny_one_as_below_a_hundredth_of_a_percent():
    fractions = (0.7, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.00001) + (0.0,) * 6 + (0.29999,) + (0.0,) * 5
    answer = Segmentation(mask=np.zeros((4, 5), np.uint8), fractions=fractions, labels=tuple(NAMES), overlay_png=None)
    record = records.SEGMENTATION.record(ImageResult(as_source("a.png"), answer), None)
    assert records.segmentation_text(record) == [
        "a.png: 5x4 mask, classes present:",
        "   70.00%    0  background",
        "   30.00%   15  person",
        "   <0.01%    8  cat",
    ]


def test_mask_png_is_indexed_with_the_voc_palette_and_keeps_the_ids():
    mask = np.array([[0, 15], [8, 255]], dtype=np.uint8)
    image = Image.open(io.BytesIO(mask_png(mask)))
    assert image.mode == "P"
    np.testing.assert_array_equal(np.asarray(image), mask)
    palette = image.getpalette()
    assert palette[15 * 3 : 15 * 3 + 3] == [192, 128, 128] and palette[8 * 3 : 8 * 3 + 3] == [64, 0, 0]


def png(image_bgr: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", image_bgr)
    assert ok
    return data.tobytes()


def decoded(data: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def legend_answer(overlay: bytes | None) -> Segmentation:
    fractions = [0.0] * 21
    fractions[15], fractions[0], fractions[8] = 0.6, 0.39999, 0.00001
    return Segmentation(
        mask=np.zeros((3, 5), np.uint8), fractions=tuple(fractions), labels=tuple(NAMES), overlay_png=overlay
    )


def test_the_legend_shows_each_class_in_its_voc_colour_largest_first_and_leaves_the_rest_of_the_image():
    grey = np.full((300, 400, 3), 200, np.uint8)
    out = decoded(add_legend(png(grey), legend_answer(None)))
    assert out.shape == grey.shape
    rows = np.nonzero((out != 200).any(axis=(1, 2)))[0]
    columns = np.nonzero((out != 200).any(axis=(0, 2)))[0]
    panel_h, panel_w = rows.max() + 1, columns.max() + 1
    assert rows.min() == 0 and columns.min() == 0 and panel_h < 150 and panel_w < 300
    assert (out[panel_h + 5 :, :] == 200).all() and (out[:, panel_w + 5 :] == 200).all()
    # Swatches down the left edge, one per class: person (192, 128, 128), background (0, 0, 0), cat (64, 0, 0) RGB.
    swatch_column = out[:panel_h, 6]
    colours = [tuple(int(v) for v in pixel[::-1]) for pixel in swatch_column]
    found = list(dict.fromkeys(c for c in colours if c in {(192, 128, 128), (0, 0, 0), (64, 0, 0)}))
    assert found == [(192, 128, 128), (0, 0, 0), (64, 0, 0)]


def test_a_small_overlay_grows_to_hold_its_legend():
    out = decoded(add_legend(png(np.full((32, 32, 3), 200, np.uint8)), legend_answer(None)))
    assert out.shape[0] > 32 and out.shape[1] > 32
    assert (out[:32, :32] != 200).any()


def test_save_writes_the_indexed_mask_and_the_overlay_with_its_legend(tmp_path):

    overlay = png(np.full((3, 5, 3), 90, np.uint8))
    result = ImageResult(as_source(tmp_path / "persons.jpg"), legend_answer(overlay))
    files = save_segment(result, tmp_path / "out")
    assert files == {
        "mask": str(tmp_path / "out" / "persons_mask.png"),
        "overlay": str(tmp_path / "out" / "persons_overlay.png"),
    }
    assert Image.open(files["mask"]).mode == "P"
    assert (tmp_path / "out" / "persons_overlay.png").read_bytes() == add_legend(overlay, result.answer)
