"""Keypoint answers on the client: split per image, records (text lists keypoints >= 0.5 by name, jsonl
and csv all of them), skeletons drawn (no server)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path, PurePath

import numpy as np

import triton_vision_contract as contract
from triton_vision_client import records
from triton_vision_client.annotate import draw_keypoints
from triton_vision_client.answers import split_keypoints
from triton_vision_client.inputs import ImageSource
from triton_vision_client.jobs import ImageResult


def response() -> dict[str, np.ndarray]:
    """One image, two detections (padded to three rows), two keypoints each."""
    points = np.zeros((1, 3, 2, 3), np.float32)
    points[0, 0] = [[10, 12, 0.9], [30, 40, 0.2]]
    points[0, 1] = [[50, 5, 0.6], [55, 9, 0.7]]
    return {
        contract.BOXES: np.array([[[5, 5, 35, 45], [45, 2, 60, 12], [0, 0, 0, 0]]], np.float32),
        contract.SCORES: np.array([[0.9, 0.6, 0.0]], np.float32),
        contract.CLASS_IDS: np.array([[0, 0, 0]], np.int32),
        contract.LABELS: np.array([[b"person", b"person", b""]], dtype=np.object_),
        contract.COUNT: np.array([[2]], np.int32),
        contract.KEYPOINTS: points,
        contract.KEYPOINT_NAMES: np.array([[b"head", b"foot"]], dtype=np.object_),
        contract.SKELETON: np.array([[[0, 1]]], np.int32),
    }


def records_of(fmt: str) -> str:
    stream = io.StringIO()
    writer = records.RecordWriter(stream, fmt, records.KEYPOINTS)
    (answer,) = split_keypoints(response())
    source = ImageSource(Path("p.jpg"), "p.jpg", PurePath("p.jpg"))
    writer.write(records.KEYPOINTS.record(ImageResult(source, answer), None))
    return stream.getvalue()


def test_each_detection_keeps_its_keypoints_names_and_skeleton():
    (answer,) = split_keypoints(response())
    assert len(answer) == 2 and answer.points.shape == (2, 2, 3)
    assert answer.names == ("head", "foot") and answer.skeleton == ((0, 1),)
    record = json.loads(records_of("jsonl"))
    assert record["keypoint_names"] == ["head", "foot"] and record["skeleton"] == [[0, 1]]
    assert record["detections"][0]["keypoints"] == [[10.0, 12.0, 0.9], [30.0, 40.0, 0.2]]
    text = records_of("text").splitlines()
    assert text[0] == "p.jpg: 2 detections" and text[1].endswith("1/2 keypoints") and text[2].split()[0] == "head"
    assert text[3].endswith("2/2 keypoints")
    (row,) = csv.DictReader(io.StringIO(records_of("csv")))
    assert row["keypoint_names"] == "head|foot" and row["keypoints"].split("|")[0] == "10.0 12.0 0.9 30.0 40.0 0.2"


def test_the_skeleton_joins_only_keypoints_both_seen():
    (answer,) = split_keypoints(response())
    blank = np.zeros((64, 64, 3), np.uint8)
    drawn = draw_keypoints(blank, answer)
    assert drawn[7, 52].any()  # on the second detection's limb, both keypoints >= 0.5
    assert not drawn[26, 20].any()  # the first's limb: its foot is 0.2
