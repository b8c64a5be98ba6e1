"""The resize rules' inverses (triton_vision_models.geometry) against references written from each rule's
definition (tests/support/format_references.py): placements, boxes mapped forward by the reference and back by the
code, and masks brought to the original size against a per-pixel loop in exact fractions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.support import format_references as ref
from triton_vision_models import geometry

# Original (height, width): odd, portrait, landscape, extreme, and sizes whose halves tie (crop offsets
# 0.5 rounded to even, letterbox sides at .5).
ORIGINALS = [(37, 53), (53, 37), (480, 640), (301, 899), (64, 96), (91, 90), (10, 300), (333, 333)]
RULES: dict[str, dict[str, Any]] = {
    "stretch": dict(size=(48, 64)),
    "letterbox-top-left": dict(size=(48, 64), centre=False),
    "letterbox-center": dict(size=(48, 64), centre=True),
    "shorter-crop": dict(size=(40, 40), shorter=45),
    "keep-aspect": dict(min_size=60, max_size=100),
    "keep-aspect-divisible": dict(min_size=60, max_size=100, size_divisible=32),
}


def code_rule(name: str) -> geometry.ResizeRule:
    params = RULES[name]
    return geometry.ResizeRule(
        mode_of(name),
        params.get("size"),
        params.get("shorter"),
        params.get("min_size"),
        params.get("max_size"),
        geometry.CENTER if params.get("centre") else geometry.TOP_LEFT,
        params.get("size_divisible", 1),
    )


def mode_of(name: str) -> str:
    return name.removesuffix("-top-left").removesuffix("-center").removesuffix("-divisible")


def ref_rule(name: str, original) -> ref.RefPlacement:
    return ref.ref_placement(mode_of(name), original, **RULES[name])


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("original", ORIGINALS, ids=lambda s: f"{s[1]}x{s[0]}")
def test_placement_is_the_rules_definition(name, original):
    got = code_rule(name).placement(original)
    want = ref_rule(name, original)
    assert (got.resized, got.offset, got.network) == (want.resized, want.offset, want.network)


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("original", ORIGINALS, ids=lambda s: f"{s[1]}x{s[0]}")
def test_a_box_placed_by_the_forward_rule_comes_back(name, original):
    height, width = original
    boxes = [
        (0.0, 0.0, width, height),  # the whole image
        (width * 0.1, height * 0.2, width * 0.45, height * 0.9),
        (width * 0.6, height * 0.05, width * 0.61, height * 0.06),  # tiny
    ]
    placement = ref_rule(name, original)
    network = np.array([ref.ref_network_box(box, placement) for box in boxes])
    back = geometry.boxes_to_original(network, code_rule(name).placement(original))
    np.testing.assert_allclose(back, np.array(boxes), atol=1e-3)
    np.testing.assert_allclose(back, ref.ref_original_boxes(network, placement), atol=1e-3)


@pytest.mark.parametrize("name", ["letterbox-center", "shorter-crop", "stretch"])
def test_boxes_outside_the_image_are_clipped_to_it(name):
    original = (37, 53)
    placement = ref_rule(name, original)
    network = np.array([[-20.0, -5.0, 200.0, 300.0]])
    back = geometry.boxes_to_original(network, code_rule(name).placement(original))
    np.testing.assert_allclose(back, ref.ref_original_boxes(network, placement), atol=1e-3)
    assert back.min() >= 0 and back[0, 2] <= 53 and back[0, 3] <= 37


def random_labels(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 7, size=shape).astype(np.uint8)


# Model output sizes relative to the network input: the same, half (a stride-2 head), an uneven
# 3/4, and a larger one.
OUTPUT_SCALES = {"same": (1, 1), "half": (1, 2), "three-quarters": (3, 4), "double": (2, 1)}


@pytest.mark.parametrize("scale", OUTPUT_SCALES)
@pytest.mark.parametrize("name", [n for n in RULES if n != "keep-aspect"])
@pytest.mark.parametrize("original", [(37, 53), (53, 37), (64, 96), (91, 90)], ids=lambda s: f"{s[1]}x{s[0]}")
def test_mask_to_original_equals_a_per_pixel_loop(name, original, scale):
    placement = code_rule(name).placement(original)
    num, den = OUTPUT_SCALES[scale]
    output = (placement.network[0] * num // den, placement.network[1] * num // den)
    labels = random_labels(output)
    got = geometry.mask_to_original(labels, placement, 255)
    want = ref.ref_mask_to_original(labels, ref_rule(name, original), 255)
    assert got.shape == original
    mismatched = np.argwhere(got != want)
    assert mismatched.size == 0, f"{len(mismatched)} pixels differ, first {mismatched[:3].tolist()}"


def test_a_centre_crop_leaves_void_borders_exactly_where_the_crop_cut():
    """Landscape 53x37 -> shorter side 45 (64x45), a 40x40 crop from x = 12, y = round(2.5) = 2: original
    pixels whose centre falls outside resized columns 12..52 or rows 2..42 are void, on all four sides."""
    original = (37, 53)
    placement = code_rule("shorter-crop").placement(original)
    assert (placement.resized, placement.offset) == ((45, 64), (-2, -12))
    mask = geometry.mask_to_original(np.zeros(placement.network, np.uint8), placement, 255)
    want = ref.ref_mask_to_original(np.zeros(placement.network, np.uint8), ref_rule("shorter-crop", original))
    np.testing.assert_array_equal(mask, want)
    seen_rows = np.flatnonzero((mask != 255).any(axis=1))
    seen_cols = np.flatnonzero((mask != 255).any(axis=0))
    # row i's centre lands at (i + 1/2) * 45 / 37: seen when in [2, 42); column j's at (j + 1/2) * 64 / 53 in [12, 52)
    assert (seen_rows[0], seen_rows[-1]) == (2, 34)
    assert (seen_cols[0], seen_cols[-1]) == (10, 42)


def test_the_reference_loop_and_its_separable_form_agree():
    placement = ref_rule("shorter-crop", (53, 37))
    labels = random_labels(placement.network, seed=3)
    np.testing.assert_array_equal(ref.ref_mask_fast(labels, placement), ref.ref_mask_to_original(labels, placement))


def test_size_divisible_pads_the_network_input_and_applies_to_keep_aspect_only():
    rule = geometry.ResizeRule(geometry.KEEP_ASPECT, min_size=800, max_size=1333, size_divisible=32)
    placement = rule.placement((491, 640))  # resized 800 x 1042 (1042.77 floored)
    assert (placement.resized, placement.network, placement.offset) == ((800, 1042), (800, 1056), (0, 0))
    with pytest.raises(geometry.ConfigError, match="keep-aspect only"):
        geometry.ResizeRule(geometry.STRETCH, (64, 64), size_divisible=32)
    with pytest.raises(geometry.ConfigError, match="whole number >= 1"):
        geometry.ResizeRule(geometry.KEEP_ASPECT, min_size=800, max_size=1333, size_divisible=0)
