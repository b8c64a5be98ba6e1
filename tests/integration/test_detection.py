"""The detection ensembles through the real tritonserver.

1. Known answer: a stand-in of the built-in detector's contract (the ONNX model zoo's Faster R-CNN: BGR
   minus the mean, padded to multiples of 32, no batch dimension) whose one detection is the bounding
   box of the bright pixels it sees; a synthetic image of odd size with a white rectangle at a known
   place must come back with that rectangle, in the pixels of the image that was sent. One image per
   request: the client splits several.
2. Same model, same answer: a seeded random MobileNetV3 Faster R-CNN served by Triton in the torchvision
   example's ensemble (DALI preprocessing) against the same model.onnx run in-process on the OpenCV
   reference input.
3. Batches (the torchvision ensemble): differently sized images in one request answer as each does alone
   (a real exported detector, and the small stand-in served where torch is missing).
"""

from __future__ import annotations

import subprocess
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import ROOT, shared_path
from tests.support.detection import (
    PERSON,
    STAND_IN_SCORE,
    bright_rectangle_image,
    encode,
    exif_rotated_jpeg,
    torchvision_reference_preprocess,
)
from triton_vision_client.client import ClientError, VisionClient
from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration

# (height, width, rectangle x1, y1, x2 (exclusive), y2 (exclusive))
UPSCALED = (389, 517, (101, 57, 333, 290))  # scale 800/389: 2.06
DOWNSCALED = (601, 1999, (1203, 13, 1871, 400))  # scale 1333/1999: 0.667 (the longer side limits)
BOX_TOLERANCE_PX = 2.0


@pytest.fixture(scope="module")
def bright_client(bright_box_detection_server):
    with VisionClient(bright_box_detection_server.options.grpc_url, "grpc") as client:
        yield client


@pytest.mark.parametrize("case", [UPSCALED, DOWNSCALED], ids=["517x389", "1999x601"])
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_box_lands_on_the_rectangle_in_original_pixels(bright_client, case, ext):
    height, width, rectangle = case
    data = encode(bright_rectangle_image(height, width, rectangle), ext)
    (result,) = bright_client.detect([data])
    assert result.class_ids == (PERSON,) and result.labels == ("person",)
    assert result.scores == pytest.approx((STAND_IN_SCORE,))
    np.testing.assert_allclose(result.boxes[0], rectangle, atol=BOX_TOLERANCE_PX)


def test_several_images_come_back_one_result_each_in_order(bright_client):
    rectangles = [
        (10, 20, 60, 90),
        (200, 100, 500, 380),
        (0, 0, 517, 389),
        (5, 6, 7, 8),
        (300, 1, 517, 30),
        (1, 2, 3, 4),
    ]
    images = [encode(bright_rectangle_image(389, 517, r), ".png") for r in rectangles]
    results = bright_client.detect(images)  # six requests: the ensemble takes one image per request
    assert len(results) == 6
    for result, rectangle in zip(results, rectangles, strict=True):
        np.testing.assert_allclose(result.boxes[0], rectangle, atol=BOX_TOLERANCE_PX)


def test_exif_rotated_jpeg_answers_in_the_upright_image(bright_client):
    upright = bright_rectangle_image(389, 517, UPSCALED[2])
    data = exif_rotated_jpeg(upright)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[:2] == (389, 517), "the test image itself must display upright"
    (result,) = bright_client.detect([data])
    np.testing.assert_allclose(result.boxes[0], UPSCALED[2], atol=BOX_TOLERANCE_PX)


def test_threshold_above_every_score_answers_nothing(bright_client):
    data = encode(bright_rectangle_image(*UPSCALED), ".png")
    (result,) = bright_client.detect([data], score_threshold=0.995)
    assert len(result) == 0 and result.boxes == () and result.labels == ()
    out = bright_client.infer(t.DETECTION, [data], (t.BOXES, t.COUNT), {t.SCORE_THRESHOLD: 0.995})
    assert out[t.BOXES].shape == (1, 0, 4) and out[t.COUNT].tolist() == [[0]]


def test_bad_parameter_is_refused_naming_it(bright_client):
    data = encode(bright_rectangle_image(*UPSCALED), ".png")
    with pytest.raises(ClientError, match="score_threshold.*1.5"):
        bright_client.detect([data], score_threshold=1.5)
    with pytest.raises(ClientError, match="max_detections.*0"):
        bright_client.detect([data], max_detections=0)


def test_differently_sized_jpeg_and_png_answer_each_in_its_own_pixels(bright_client):
    # Odd sizes on purpose: the two images resize to 800 x 1063 and 400 x 1333 and are padded to
    # 800 x 1088 and 416 x 1344 (multiples of 32), along different axes.
    first = encode(bright_rectangle_image(*UPSCALED), ".jpg")
    second = encode(bright_rectangle_image(*DOWNSCALED), ".png")
    for data, (_, _, rectangle) in ((first, UPSCALED), (second, DOWNSCALED)):
        out = bright_client.infer(t.DETECTION, [data], (t.BOXES, t.SCORES, t.CLASS_IDS, t.LABELS, t.COUNT))
        assert out[t.COUNT].tolist() == [[1]] and out[t.BOXES].shape == (1, 1, 4)
        np.testing.assert_allclose(out[t.BOXES][0, 0], rectangle, atol=BOX_TOLERANCE_PX)
        assert out[t.LABELS].tolist() == [[b"person"]]

    together = bright_client.detect([first, second])  # the client sends them one per request
    alone = [bright_client.detect([image])[0] for image in (first, second)]
    assert together == alone


def test_images_with_nothing_above_the_threshold_answer_empty_rows(bright_client):
    data = encode(bright_rectangle_image(*UPSCALED), ".png")
    results = bright_client.detect([data, data, data], score_threshold=0.995)  # 3 requests
    assert [len(r) for r in results] == [0] * 3
    out = bright_client.infer(t.DETECTION, [data], (t.BOXES, t.COUNT), {t.SCORE_THRESHOLD: 0.995})
    assert out[t.BOXES].shape == (1, 0, 4) and out[t.COUNT].tolist() == [[0]]


def test_a_photo_the_detector_finds_nothing_in_answers_empty_rows(empty_detection_server):
    """The model zoo's detector answers zero rows ([1, 0, 4] once batched) for a photo with nothing in it:
    Triton's ensemble carries the empty tensors to the post-processing, which answers no detection."""
    data = encode(bright_rectangle_image(*UPSCALED), ".jpg")
    with VisionClient(empty_detection_server.options.grpc_url, "grpc") as client:
        (result,) = client.detect([data], score_threshold=0.0)
        out = client.infer(t.DETECTION, [data], (t.BOXES, t.SCORES, t.LABELS, t.COUNT))
    assert len(result) == 0 and result.boxes == ()
    assert out[t.BOXES].shape == (1, 0, 4) and out[t.COUNT].tolist() == [[0]]


def test_more_images_than_max_batch_size_in_one_request_are_refused(bright_client):
    """The model zoo's detector takes one image per execution, so the ensemble one per request."""
    assert bright_client.ensemble(t.DETECTION).max_batch_size == t.DETECTION_MAX_BATCH == 1
    data = encode(bright_rectangle_image(*UPSCALED), ".png")
    with pytest.raises(ClientError) as info:
        bright_client.infer(t.DETECTION, [data] * (t.DETECTION_MAX_BATCH + 1), (t.BOXES,))
    message = str(info.value)
    assert "batch" in message and str(t.DETECTION_MAX_BATCH) in message, message


def test_detect_cli_prints_and_writes_annotated_images(bright_box_detection_server, tmp_path):
    image = tmp_path / "rect.png"
    image.write_bytes(encode(bright_rectangle_image(*UPSCALED), ".png"))
    out_dir = tmp_path / "annotated"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "triton_vision_cli",
            "detect",
            str(image),
            "--out",
            str(out_dir),
            "--url",
            bright_box_detection_server.options.grpc_url,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "1 detection" in result.stdout and "person" in result.stdout
    annotated = cv2.imread(str(out_dir / "rect.detections.jpg"))
    assert annotated is not None and annotated.shape[:2] == (389, 517)


# -- a real exported torchvision Faster R-CNN (random weights), served vs in-process --------------
TORCHVISION_ENSEMBLE = "torchvision_detection"  # examples/torchvision_detection


def test_the_small_stand_in_answers_an_image_the_same_whatever_its_batch_mates(small_detection_server):
    """The batch is padded to its largest image; the detector reads each image within its own size."""
    kitten = shared_path("images/kitten.jpg").read_bytes()  # 720 x 720: resized to 800 x 800
    persons = shared_path("images/persons.jpg").read_bytes()  # 640 x 491: 1042 x 800, pads the kitten's width
    wide = encode(bright_rectangle_image(*DOWNSCALED), ".png")  # 1999 x 601: 1333 x 400, and its height
    with VisionClient(small_detection_server.options.grpc_url, "grpc") as client:
        (alone,) = client.detect([kitten], ensemble=TORCHVISION_ENSEMBLE)
        for mates in ([persons], [wide], [persons, wide]):
            together = client.detect([kitten, *mates], ensemble=TORCHVISION_ENSEMBLE)
            assert together[0] == alone, (mates, together[0], alone)  # the same floats, not merely close
    assert len(alone) == 1


def test_served_mobilenet_equals_in_process_onnx_on_a_real_photo(
    mobilenet_detection_server, mobilenet_detection_repository
):
    data = shared_path("images/persons.jpg").read_bytes()
    with VisionClient(mobilenet_detection_server.options.grpc_url, "grpc") as client:
        started = time.perf_counter()
        (served,) = client.detect([data], score_threshold=0.3, max_detections=20, ensemble=TORCHVISION_ENSEMBLE)
        elapsed = time.perf_counter() - started
    print(f"served detection of persons.jpg (MobileNetV3, CPU): {elapsed:.2f} s")

    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    pixels, (height, width) = torchvision_reference_preprocess(rgb)
    session = ort.InferenceSession(
        str(mobilenet_detection_repository / t.TORCHVISION_DETECTOR / "1" / "model.onnx"),
        providers=["CPUExecutionProvider"],
    )
    sizes = np.array([[height, width]], dtype=np.int64)
    boxes, scores, labels, count = session.run(None, {t.TORCHVISION_INPUT: pixels, t.TORCHVISION_IMAGE_SIZES: sizes})
    n = int(count[0, 0])
    boxes, scores, labels = boxes[:, :n], scores[:, :n], labels[:, :n]
    keep = scores[0] >= 0.3
    # Back to the 640 x 491 original by hand: x * 640 / width, y * 491 / height.
    expected_boxes = boxes[0][keep][:20] * np.array([640 / width, 491 / height] * 2)
    expected_scores, expected_ids = scores[0][keep][:20], labels[0][keep][:20]

    assert len(served) >= 5, "the lively random weights give detections above 0.3"
    top = 5  # DALI's and OpenCV's decoders differ slightly; the confident top is stable
    np.testing.assert_allclose(served.scores[:top], expected_scores[:top], atol=0.02)
    assert list(served.class_ids[:top]) == expected_ids[:top].tolist()
    np.testing.assert_allclose(np.array(served.boxes[:top]), expected_boxes[:top], atol=3.0)
    assert all(0 <= x1 <= x2 <= 640 and 0 <= y1 <= y2 <= 491 for x1, y1, x2, y2 in served.boxes)


def test_served_mobilenet_answers_a_batch_image_by_image_as_alone(mobilenet_detection_server):
    """A real detector with differently sized images in one request: the padding changes nothing."""
    photo = shared_path("images/persons.jpg").read_bytes()
    rgb = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    crop = encode(
        cv2.cvtColor(np.ascontiguousarray(rgb[40:441, 100:403]), cv2.COLOR_BGR2RGB), ".png"
    )  # 303 x 401 portrait
    with VisionClient(mobilenet_detection_server.options.grpc_url, "grpc") as client:
        started = time.perf_counter()
        options = {"score_threshold": 0.3, "max_detections": 20, "ensemble": TORCHVISION_ENSEMBLE}
        together = client.detect([photo, crop], **options)
        elapsed = time.perf_counter() - started
        alone = [client.detect([image], **options)[0] for image in (photo, crop)]
    print(f"served detection of 2 images in one request (MobileNetV3, CPU): {elapsed:.2f} s")
    assert len(together[0]) >= 5 and len(together[1]) >= 1
    for batched, single in zip(together, alone, strict=True):
        assert batched.class_ids == single.class_ids
        np.testing.assert_allclose(batched.scores, single.scores, atol=1e-4)
        np.testing.assert_allclose(np.array(batched.boxes), np.array(single.boxes), atol=0.05)
    assert all(0 <= x1 <= x2 <= 303 and 0 <= y1 <= y2 <= 401 for x1, y1, x2, y2 in together[1].boxes)


def test_a_file_that_is_not_an_image_is_refused_before_decoding(bright_client):
    with pytest.raises(ClientError, match="(?i)jpeg|png|image"):
        bright_client.detect([b"GIF89a" + b"\x00" * 64])
