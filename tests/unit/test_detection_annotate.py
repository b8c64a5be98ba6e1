"""Drawing detections (pure OpenCV) and the detect CLI's printing."""

from __future__ import annotations

import numpy as np
import pytest

from triton_vision_client.annotate import class_colour, draw_detections, text_colour
from triton_vision_client.cli import build_parser, print_detections
from triton_vision_client.client import Detections


def test_each_class_gets_its_own_colour_and_the_same_class_the_same_one():
    colours = [class_colour(i) for i in range(1, 91)]
    assert len(set(colours)) == 90
    assert class_colour(1) == class_colour(1)


def test_label_text_is_dark_on_light_and_light_on_dark():
    assert text_colour((255, 255, 255)) == (0, 0, 0)
    assert text_colour((0, 0, 0)) == (255, 255, 255)
    assert text_colour((0, 255, 255)) == (0, 0, 0)  # yellow in BGR


def test_draw_puts_the_box_outline_in_its_class_colour_and_leaves_the_input_alone():
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    out = draw_detections(image, [(50.0, 60.0, 250.0, 180.0)], ["person"], [0.9], [1])
    assert image.max() == 0, "the input must not be drawn on"
    colour = np.array(class_colour(1))
    assert np.abs(out[120, 50].astype(int) - colour).max() <= 2  # left edge, middle row
    assert np.abs(out[180, 150].astype(int) - colour).max() <= 2  # bottom edge
    assert out[120, 150].max() == 0  # inside the box stays untouched
    assert out[30:60, 50:120].any(), "the label tag sits above the box"


def test_a_label_at_the_top_edge_stays_inside_the_image():
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    out = draw_detections(image, [(80.0, 0.0, 100.0, 40.0)], ["toothbrush"], [0.51], [90])
    assert out[:12].any(), "the tag is drawn inside the image, below the top edge"


def test_print_detections_lists_score_id_label_and_box(capsys):
    result = Detections(boxes=((1.0, 2.0, 30.5, 40.25),), scores=(0.875,), class_ids=(1,), labels=("person",))
    print_detections(["a.jpg"], [result])
    out = capsys.readouterr().out
    assert "a.jpg: 1 detection" in out
    assert "0.875" in out and "person" in out and "30.5" in out and "40.2" in out


def test_detect_subcommand_parses_threshold_and_output_folder():
    args = build_parser().parse_args(["detect", "x.jpg", "y.png", "--threshold", "0.3", "--out", "annotated"])
    assert args.images == ["x.jpg", "y.png"] and args.threshold == 0.3 and str(args.out) == "annotated"


def test_a_padded_batch_response_splits_into_one_result_per_image_cut_to_its_count():
    from triton_vision_client.client import split_detections
    from triton_vision_models import tensors as t

    out = {
        t.BOXES: np.array([[[1, 2, 3, 4], [5, 6, 7, 8]], [[9, 9, 9, 9], [0, 0, 0, 0]], [[0] * 4, [0] * 4]], np.float32),
        t.SCORES: np.array([[0.9, 0.8], [0.7, 0.0], [0.0, 0.0]], np.float32),
        t.CLASS_IDS: np.array([[1, 18], [44, 0], [0, 0]], np.int32),
        t.LABELS: np.array([[b"person", b"dog"], [b"bottle", b""], [b"", b""]], dtype=np.object_),
        t.COUNT: np.array([[2], [1], [0]], np.int32),
    }
    first, second, third = split_detections(out)
    assert first.boxes == ((1, 2, 3, 4), (5, 6, 7, 8)) and first.labels == ("person", "dog")
    assert second == Detections(
        boxes=((9, 9, 9, 9),), scores=(pytest.approx(0.7),), class_ids=(44,), labels=("bottle",)
    )
    assert len(third) == 0 and third.boxes == ()
