"""Instance-segmentation answers on the client: splitting a padded batch, records with pixels and outline
polygons (text, JSON Lines, CSV), the annotated image (no server)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path, PurePath

import numpy as np

import triton_vision_contract as contract
from triton_vision_client import records
from triton_vision_client.annotate import draw_instances
from triton_vision_client.answers import split_instances
from triton_vision_client.inputs import ImageSource
from triton_vision_client.jobs import ImageResult


def response() -> dict[str, np.ndarray]:
    """Two images (6 x 8 and 4 x 10) in one padded response: two instances, then one."""
    maps = np.full((2, 6, 10), contract.INSTANCE_PAD, np.uint16)
    maps[0, :6, :8] = 0
    maps[0, 1:4, 1:4] = 1  # a 3 x 3 square
    maps[0, 2:5, 5:8] = 2
    maps[1, :4, :10] = 0
    maps[1, 0:2, 0:10] = 1
    return {
        contract.BOXES: np.array([[[1, 1, 4, 4], [5, 2, 8, 5]], [[0, 0, 10, 2], [0, 0, 0, 0]]], np.float32),
        contract.SCORES: np.array([[0.9, 0.6], [0.8, 0.0]], np.float32),
        contract.CLASS_IDS: np.array([[15, 0], [16, 0]], np.int32),
        contract.LABELS: np.array([[b"cat", b"person"], [b"dog", b""]], dtype=np.object_),
        contract.COUNT: np.array([[2], [1]], np.int32),
        contract.INSTANCE_MAP: maps,
    }


def test_each_map_is_cropped_to_its_image_by_the_padding():
    first, second = split_instances(response())
    assert first.instance_map.shape == (6, 8) and second.instance_map.shape == (4, 10)
    assert len(first) == 2 and len(second) == 1 and first.detections.labels == ("cat", "person")
    assert first.pixels() == [9, 9] and second.pixels() == [20]
    assert first.polygons(0) == [[(1, 1), (1, 3), (3, 3), (3, 1)]]


def records_of(fmt: str) -> str:
    stream = io.StringIO()
    writer = records.RecordWriter(stream, fmt, records.INSTANCES)
    for index, answer in enumerate(split_instances(response())):
        path = f"p{index}.jpg"
        writer.write(records.INSTANCES.record(ImageResult(ImageSource(Path(path), path, PurePath(path)), answer), None))
    return stream.getvalue()


def test_records_carry_each_instance_pixels_and_polygons():
    first, second = (json.loads(line) for line in records_of("jsonl").splitlines())
    assert (first["height"], first["width"]) == (6, 8)
    cat = first["detections"][0]
    assert (cat["label"], cat["pixels"], cat["polygons"]) == ("cat", 9, [[[1, 1], [1, 3], [3, 3], [3, 1]]])
    assert second["detections"][0]["polygons"] == [[[0, 0], [0, 1], [9, 1], [9, 0]]]
    text = records_of("text").splitlines()
    assert text[0] == "p0.jpg: 2 instances" and text[1].split()[-3:] == ["9", "px", "18.75%"]
    rows = list(csv.DictReader(io.StringIO(records_of("csv"))))
    assert rows[0]["pixels"] == "9|9" and rows[0]["polygons"].split("|")[0] == "1 1 1 3 3 3 3 1"


def test_each_instance_is_drawn_in_a_colour_of_its_own():
    (first, _) = split_instances(response())
    drawn = draw_instances(np.zeros((6, 8, 3), np.uint8), first.instance_map)
    assert not drawn[0, 0].any() and drawn[2, 2].any() and drawn[3, 6].any()
    assert tuple(drawn[2, 2]) != tuple(drawn[3, 6])
