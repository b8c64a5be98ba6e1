"""Client-side segmentation helpers: cropping the padded batch, indexed PNG masks, files."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from triton_vision_client.segmentation import Segmentation, describe, mask_png, split_outputs, write_files
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
    assert describe(second) == ["  100.00%    8  cat"]


def test_mask_png_is_indexed_with_the_voc_palette_and_keeps_the_ids():
    mask = np.array([[0, 15], [8, 255]], dtype=np.uint8)
    image = Image.open(io.BytesIO(mask_png(mask)))
    assert image.mode == "P"
    np.testing.assert_array_equal(np.asarray(image), mask)
    palette = image.getpalette()
    assert palette[15 * 3 : 15 * 3 + 3] == [192, 128, 128] and palette[8 * 3 : 8 * 3 + 3] == [64, 0, 0]


def test_write_files_names_mask_and_overlay_after_the_image(tmp_path):
    result = Segmentation(
        mask=np.zeros((3, 5), np.uint8), fractions=(1.0,) + (0.0,) * 20, labels=tuple(NAMES), overlay_png=b"\x89PNG..."
    )
    written = write_files(result, tmp_path / "out", "persons")
    assert [p.name for p in written] == ["persons_mask.png", "persons_overlay.png"]
    assert Image.open(written[0]).size == (5, 3)
    assert written[1].read_bytes() == b"\x89PNG..."
