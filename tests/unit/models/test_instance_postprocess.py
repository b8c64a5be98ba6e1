"""Instance segmentation's post-processing (the detection runner with the yolo-seg and torchvision-maskrcnn
formats): INSTANCE_MAP against references written from the rules, and the real YOLOv8n-seg in-process
against Ultralytics' documented rules (tests/support/ultralytics_reference.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, shared_path
from tests.support import ultralytics_reference as ultra
from tests.support.runners import run_request
from triton_vision_models import geometry
from triton_vision_models import tensors as t
from triton_vision_models.detection import DetectionPostprocessor
from triton_vision_models.errors import InvalidInputError

LABELS = ["a", "b"]
LETTERBOX = geometry.ResizeRule("letterbox", (64, 64), pad="center")
STRETCH = geometry.ResizeRule("stretch", (64, 64))


def centre_inside(shape: tuple[int, int], box, *, open_low: bool = False) -> np.ndarray:
    """Pixels of an image of ``shape`` whose centres (i + 0.5) lie in [x1, x2) x [y1, y2) (a box crop), or
    (x1, x2) x (y1, y2) with ``open_low`` (a hard-edged probability mask: on its edge the bilinear value is
    0.5, not above it)."""
    ys = np.arange(shape[0])[:, None] + 0.5
    xs = np.arange(shape[1])[None, :] + 0.5
    x1, y1, x2, y2 = box
    low = (xs > x1) & (ys > y1) if open_low else (xs >= x1) & (ys >= y1)
    return low & (xs < x2) & (ys < y2)


def yolo_seg_request(boxes, scores, classes, *, original, resized, prototypes=None):
    """One image: candidates (cx, cy, w, h in network pixels) whose single coefficient is 1, on a
    prototype that is +1 everywhere (so each mask is its box, exactly)."""
    rows = []
    for (x1, y1, x2, y2), score, cls in zip(boxes, scores, classes, strict=True):
        class_scores = [score if c == cls else 0.0 for c in range(len(LABELS))]
        rows.append([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, *class_scores, 1.0])
    predictions = np.array(rows, np.float32).T[None]
    protos = np.ones((1, 1, 16, 16), np.float32) if prototypes is None else prototypes
    return {
        t.RAW_PREDICTIONS: predictions,
        t.RAW_PROTOTYPES: protos,
        t.ORIGINAL_SIZE: np.array([original], np.int64),
        t.RESIZED_SIZE: np.array([resized], np.int64),
    }


def test_each_mask_is_its_box_and_the_better_detection_owns_the_overlap():
    runner = DetectionPostprocessor(LABELS, format="yolo-seg", rule=LETTERBOX)
    # original 100 x 200 -> letterbox 32 x 64, centred: 16 rows of padding above
    boxes = [(10, 20, 40, 40), (30, 24, 60, 44)]
    out = run_request(runner, yolo_seg_request(boxes, [0.6, 0.9], [0, 1], original=(100, 200), resized=(32, 64)))
    assert out[t.INSTANCE_MAP].dtype == np.uint16 and out[t.INSTANCE_MAP].shape == (1, 100, 200)
    assert list(out[t.SCORES][0]) == pytest.approx([0.9, 0.6])
    best, second = (np.array(b) for b in out[t.BOXES][0])
    want = np.zeros((100, 200), np.uint16)
    want[centre_inside((100, 200), second)] = 2
    want[centre_inside((100, 200), best)] = 1  # the better one (BOXES order) wins where they overlap
    np.testing.assert_array_equal(out[t.INSTANCE_MAP][0], want)
    # and the boxes are the network boxes with the letterbox undone (scale 200 / 64, offset 16 rows)
    np.testing.assert_allclose(best, [(30) * 200 / 64, (24 - 16) * 200 / 64, 60 * 200 / 64, (44 - 16) * 200 / 64])


def test_a_batch_pads_each_map_bottom_right_with_65535():
    runner = DetectionPostprocessor(LABELS, format="yolo-seg", rule=STRETCH)
    one = yolo_seg_request([(0, 0, 32, 32)], [0.9], [0], original=(30, 50), resized=(64, 64))
    two = yolo_seg_request([(0, 0, 32, 64), (32, 0, 64, 64)], [0.8, 0.7], [1, 0], original=(70, 20), resized=(64, 64))
    batch = {name: np.concatenate([one[name], two[name]]) for name in one if name != t.RAW_PREDICTIONS}
    batch[t.RAW_PREDICTIONS] = np.concatenate(
        [np.pad(one[t.RAW_PREDICTIONS], ((0, 0), (0, 0), (0, 1))), two[t.RAW_PREDICTIONS]]
    )
    out = run_request(runner, batch)
    maps = out[t.INSTANCE_MAP]
    assert maps.shape == (2, 70, 50) and list(out[t.COUNT].reshape(-1)) == [1, 2]
    assert (maps[0, 30:, :] == t.INSTANCE_PAD).all() and (maps[0, :30, :] != t.INSTANCE_PAD).all()
    assert (maps[1, :, 20:] == t.INSTANCE_PAD).all() and (maps[1, :, :20] != t.INSTANCE_PAD).all()
    np.testing.assert_array_equal(maps[0, :30, :50], centre_inside((30, 50), (0, 0, 25, 15)).astype(np.uint16))
    assert set(np.unique(maps[1, :70, :20])) == {1, 2}


def test_no_detection_gives_an_empty_map():
    runner = DetectionPostprocessor(LABELS, format="yolo-seg", rule=STRETCH)
    out = run_request(runner, yolo_seg_request([(0, 0, 8, 8)], [0.1], [0], original=(9, 7), resized=(64, 64)))
    assert out[t.COUNT][0, 0] == 0 and out[t.INSTANCE_MAP].shape == (1, 9, 7) and not out[t.INSTANCE_MAP].any()


def test_maskrcnn_probabilities_above_one_half_at_each_original_pixel_centre():
    runner = DetectionPostprocessor(LABELS, format="torchvision-maskrcnn", rule=STRETCH)
    masks = np.zeros((1, 2, 1, 64, 64), np.float32)
    masks[0, 0, 0, 10:30, 5:20] = 1.0  # a hard-edged rectangle: above 0.5 up to its edges exactly
    masks[0, 1, 0, 20:40, 10:50] = 0.9
    out = run_request(
        runner,
        {
            t.RAW_BOXES: np.array([[[5, 10, 20, 30], [10, 20, 50, 40]]], np.float32),
            t.RAW_SCORES: np.array([[0.95, 0.7]], np.float32),
            t.RAW_LABELS: np.array([[1, 0]], np.int64),
            t.RAW_MASKS: masks,
            t.ORIGINAL_SIZE: np.array([[96, 160]]),
            t.RESIZED_SIZE: np.array([[64, 64]]),
        },
    )
    scale = np.array([160 / 64, 96 / 64] * 2)
    want = np.zeros((96, 160), np.uint16)
    want[centre_inside((96, 160), np.array([10, 20, 50, 40]) * scale, open_low=True)] = 2
    want[centre_inside((96, 160), np.array([5, 10, 20, 30]) * scale, open_low=True)] = 1
    np.testing.assert_array_equal(out[t.INSTANCE_MAP][0], want)


def test_prototypes_of_another_batch_are_refused():
    runner = DetectionPostprocessor(LABELS, format="yolo-seg", rule=STRETCH)
    request = yolo_seg_request([(0, 0, 8, 8)], [0.9], [0], original=(9, 7), resized=(64, 64))
    request[t.RAW_PROTOTYPES] = np.ones((2, 1, 16, 16), np.float32)
    with pytest.raises(InvalidInputError, match="inconsistent inputs"):
        run_request(runner, request)


def test_yolo_seg_takes_the_iou_threshold_parameter():
    runner = DetectionPostprocessor(LABELS, format="yolo-seg", rule=STRETCH)
    boxes = [(0, 0, 32, 32), (2, 2, 34, 34)]
    request = yolo_seg_request(boxes, [0.9, 0.8], [0, 0], original=(64, 64), resized=(64, 64))
    assert run_request(runner, request)[t.COUNT][0, 0] == 1
    assert run_request(runner, request, {"iou_threshold": 0.95})[t.COUNT][0, 0] == 2


# -- the real YOLOv8n-seg, in-process, against Ultralytics' rules -----------------------------------------
def real_photos() -> dict[str, np.ndarray]:
    from skimage import data

    photos = {name: ultra.photo(str(shared_path(f"images/{name}.jpg"))) for name in ("kitten", "dog", "persons")}
    photos.update({name: getattr(data, name)() for name in ("astronaut", "coffee", "chelsea")})
    return photos


def test_real_yolov8n_seg_masks_match_ultralytics_rules():
    """Every reference detection >= 0.5 matched (same class, box IoU >= 0.7), its instance IoU >= 0.85,
    with the same network input on both sides (the post-processing alone is judged here)."""
    import onnxruntime as ort

    model = shared_path("models/yolov8n-seg_int8_320.onnx")
    labels = (ROOT / "examples" / "yolo" / "coco80.txt").read_text().splitlines()
    runner = DetectionPostprocessor(
        labels,
        format="yolo-seg",
        rule=geometry.ResizeRule("letterbox", (320, 320), pad="center"),
        default_score_threshold=0.25,
    )
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    judged = 0
    for name, rgb in real_photos().items():
        want = ultra.segment(Path(model), rgb)
        lb = ultra.letterbox(rgb, 320)
        output0, output1 = session.run(None, {"images": lb.pixels})
        h, w = rgb.shape[:2]
        resized = (int(round(h * lb.gain)), int(round(w * lb.gain)))
        out = run_request(
            runner,
            {
                t.RAW_PREDICTIONS: output0,
                t.RAW_PROTOTYPES: output1,
                t.ORIGINAL_SIZE: np.array([[h, w]]),
                t.RESIZED_SIZE: np.array([resized]),
            },
        )
        n = int(out[t.COUNT][0, 0])
        got_map, want_map = out[t.INSTANCE_MAP][0], ultra.paint(want.masks, (h, w))
        assert got_map.shape == (h, w)
        for j in np.flatnonzero(want.scores >= 0.5):
            same_class = [k for k in range(n) if out[t.CLASS_IDS][0][k] == want.class_ids[j]]
            assert same_class, f"{name}: {labels[want.class_ids[j]]} {want.scores[j]:.2f} not answered"
            k = max(same_class, key=lambda k: ultra.box_iou(out[t.BOXES][0][k], want.boxes[j]))
            assert ultra.box_iou(out[t.BOXES][0][k], want.boxes[j]) >= 0.7, name
            assert ultra.mask_iou(got_map == k + 1, want_map == j + 1) >= 0.85, name
            judged += 1
    assert judged >= 9  # cat, dog, 4 persons, 2 astronaut persons, cup, cat
