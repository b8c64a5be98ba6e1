"""A pipeline's answer on the client: split per image, recorded (JSON Lines per photo, CSV per object),
drawn with each object's answer."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

import triton_vision_contract as contract
from triton_vision_client import records
from triton_vision_client.annotate import tags
from triton_vision_client.answers import Embedding, split_pipeline
from triton_vision_client.inputs import ImageSource
from triton_vision_client.jobs import ImageResult


def response(embeddings: bool = False) -> dict[str, np.ndarray]:
    """Two photos: the first with two objects, the second with none (rows padded to 2)."""
    out = {
        contract.BOXES: np.array([[[1, 2, 3, 4], [5, 6, 7, 8]], [[0, 0, 0, 0], [0, 0, 0, 0]]], np.float32),
        contract.SCORES: np.array([[0.9, 0.8], [0, 0]], np.float32),
        contract.CLASS_IDS: np.array([[15, 16], [0, 0]], np.int32),
        contract.LABELS: np.array([[b"cat", b"dog"], [b"", b""]], dtype=object),
        contract.COUNT: np.array([[2], [0]], np.int32),
    }
    if embeddings:
        out[contract.OBJECT_EMBEDDINGS] = np.array([[[1, 0], [0, 1]], [[0, 0], [0, 0]]], np.float32)
    else:
        out[contract.OBJECT_CLASS_IDS] = np.array([[[0, 1], [3, 4]], [[0, 0], [0, 0]]], np.int32)
        out[contract.OBJECT_SCORES] = np.array([[[0.6, 0.4], [0.7, 0.3]], [[0, 0], [0, 0]]], np.float32)
        out[contract.OBJECT_LABELS] = np.array(
            [[[b"tabby", b"tiger cat"], [b"golden retriever", b"kuvasz"]], [[b"", b""], [b"", b""]]], dtype=object
        )
    return out


def test_task_of_and_the_outputs_to_ask_know_both_kinds_of_pipeline():
    for embeddings in (False, True):
        names = list(response(embeddings))
        assert contract.task_of(names) == contract.PIPELINE
        assert set(contract.outputs_to_ask(contract.PIPELINE, names)) == set(names)
    assert contract.task_of(contract.TASK_OUTPUTS[contract.DETECTION]) == contract.DETECTION


def test_each_photo_gets_its_objects_with_their_answers():
    first, second = split_pipeline(response())
    assert first.labels == ("cat", "dog") and len(second) == 0 and second.objects == ()
    assert [o.labels[0] for o in first.objects] == ["tabby", "golden retriever"]
    assert tags(first)[0] == ["tabby (cat)", "golden retriever (dog)"]
    (vectors, _) = split_pipeline(response(embeddings=True))
    assert isinstance(vectors.objects[1], Embedding) and vectors.objects[1].vector.tolist() == [0.0, 1.0]
    assert tags(vectors)[0] == ["cat", "dog"]  # an embedder's answer is not drawn


def render(fmt: str, embeddings: bool = False) -> str:
    stream = io.StringIO()
    writer = records.RecordWriter(stream, fmt, records.PIPELINE)
    for index, answer in enumerate(split_pipeline(response(embeddings))):
        writer.write(records.PIPELINE.record(ImageResult(ImageSource.in_memory(index, b"x"), answer), None))
    return stream.getvalue()


def test_jsonl_has_a_record_per_photo_and_csv_a_row_per_object():
    first, second = (json.loads(line) for line in render("jsonl").splitlines())
    assert [o["classes"][0]["label"] for o in first["objects"]] == ["tabby", "golden retriever"]
    assert first["objects"][1]["box"] == [5.0, 6.0, 7.0, 8.0] and second["objects"] == []
    rows = list(csv.DictReader(io.StringIO(render("csv"))))
    assert [(r["object"], r["label"], r["answer"]) for r in rows] == [
        ("0", "cat", "tabby"),
        ("1", "dog", "golden retriever"),
        ("", "", ""),  # the photo without objects: one row, its object cells empty
    ]
    vectors = [json.loads(line) for line in render("jsonl", embeddings=True).splitlines()]
    assert vectors[0]["objects"][0]["embedding"] == [1.0, 0.0]
    assert "2-d embedding" in render("text", embeddings=True)
