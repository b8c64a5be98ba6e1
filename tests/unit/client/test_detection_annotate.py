"""Drawing detections (pure OpenCV), the detect CLI's printing, splitting a padded response."""

from __future__ import annotations

import numpy as np
import pytest

from triton_vision_cli.main import build_parser
from triton_vision_client.annotate import class_colour, draw_detections, text_colour
from triton_vision_client.answers import Detections, split_detections
from triton_vision_client.tasks import print_answers


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


def test_printed_detections_list_score_id_label_and_box(capsys):
    result = Detections(boxes=((1.0, 2.0, 30.5, 40.25),), scores=(0.875,), class_ids=(1,), labels=("person",))
    print_answers("detection", ["a.jpg"], [result])
    assert capsys.readouterr().out.splitlines() == [
        "a.jpg: 1 detection",
        "   0.875    1 person           [    1.0     2.0    30.5    40.2]",
    ]


def test_text_output_lists_the_first_ten_detections_and_counts_the_rest(capsys, tmp_path):
    import cv2

    boxes = tuple((float(i), float(i), float(i + 5), float(i + 5)) for i in range(100))
    many = Detections(boxes=boxes, scores=(0.9,) * 100, class_ids=(1,) * 100, labels=("person",) * 100)
    image = tmp_path / "crowd.png"
    cv2.imwrite(str(image), np.zeros((120, 120, 3), np.uint8))
    print_answers("detection", [str(image)], [many], encoded=[image.read_bytes()], out=tmp_path / "out")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{image}: 100 detections"
    assert len(lines) == 1 + 10 + 2
    assert lines[11] == "  ... and 90 more"
    assert lines[12] == f"  wrote {tmp_path / 'out' / 'crowd.detections.jpg'}"
    assert cv2.imread(str(tmp_path / "out" / "crowd.detections.jpg")).shape == (120, 120, 3)


def test_detect_subcommand_parses_threshold_output_folder_and_all_detections():
    parser = build_parser("detect")
    args = parser.parse_args(["detect", "x.jpg", "y.png", "--threshold", "0.3", "--out", "annotated"])
    assert args.images == ["x.jpg", "y.png"] and args.threshold == 0.3 and str(args.out) == "annotated"
    assert not args.all_detections and parser.parse_args(["detect", "x.jpg", "--all-detections"]).all_detections


def test_a_padded_batch_response_splits_into_one_result_per_image_cut_to_its_count():
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
