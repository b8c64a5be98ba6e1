"""The batch job's pure parts: listing inputs (local and fsspec URLs), reading them, the Parquet
parts (each task's records round-trip field for field), resume's read-back, and the command's
errors before any work starts. Ray and servers: tests/integration/test_batch.py."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")
fsspec = pytest.importorskip("fsspec")

from tests.support.cli import cli  # noqa: E402
from triton_vision_batch.parquet import SCHEMAS, PartStore  # noqa: E402
from triton_vision_batch.sources import Item, list_inputs, sources  # noqa: E402
from triton_vision_client import records  # noqa: E402
from triton_vision_client.answers import Classification, Detections, Segmentation  # noqa: E402
from triton_vision_client.inputs import expand_inputs  # noqa: E402
from triton_vision_client.jobs import ImageResult, as_source, read_source  # noqa: E402
from triton_vision_contract import CLASSIFICATION, DETECTION, PIPELINE, SEGMENTATION  # noqa: E402
from triton_vision_contract.errors import UsageError  # noqa: E402


@pytest.fixture
def bucket():
    """A fresh memory:// folder with images, a non-image, a hidden file and a subfolder."""
    root = f"memory://bucket-{uuid.uuid4().hex[:8]}/photos"
    fs = fsspec.filesystem("memory")
    files = {"a.jpg": b"jpeg a", "b.PNG": b"png b", "notes.txt": b"no", ".hidden.jpg": b"x", "sub/c.jpg": b"jpeg c"}
    for name, data in files.items():
        fs.pipe_file(f"{root}/{name}", data)
    yield root
    fs.rm(root.split("/photos")[0], recursive=True)


def test_a_url_folder_lists_its_images_sorted_hidden_and_non_images_left_out(bucket):
    flat = list_inputs([bucket])
    assert [item.name for item in flat.items] == [f"{bucket}/a.jpg", f"{bucket}/b.PNG"]
    assert flat.skipped_not_images == 1
    deep = list_inputs([bucket], recursive=True)
    assert [item.name for item in deep.items] == [f"{bucket}/a.jpg", f"{bucket}/b.PNG", f"{bucket}/sub/c.jpg"]
    assert [item.name for item in list_inputs([f"{bucket}/*.jpg"]).items] == [f"{bucket}/a.jpg"]


@pytest.mark.parametrize("suffix", ["/missing", "/*.gif"])
def test_a_url_naming_nothing_is_one_error_before_work(bucket, suffix):
    with pytest.raises(UsageError, match="no such file, folder or bucket|no file matches"):
        list_inputs([bucket + suffix])


def test_local_inputs_are_named_as_the_folder_job_names_them(tmp_path, monkeypatch):
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    for name in ("photos/x.jpg", "photos/sub/y.png", "photos/z.txt"):
        (tmp_path / name).write_bytes(b"data")
    monkeypatch.chdir(tmp_path)
    listing = list_inputs(["photos", "photos/x.jpg"], recursive=True)
    folder_job = [s.name for s in expand_inputs(["photos"], recursive=True)]
    assert [item.name for item in listing.items] == folder_job, "each image once, named as the folder job does"
    assert all(Path(item.location).is_absolute() for item in listing.items), "actors may run elsewhere"
    with pytest.raises(UsageError, match="no such file or folder"):
        list_inputs(["nowhere"])


def test_url_sources_are_read_lazily_and_a_missing_one_fails_alone(bucket):
    items = [Item(f"{bucket}/a.jpg", f"{bucket}/a.jpg"), Item("gone", f"{bucket}/gone.jpg")]
    unreadable: list[ImageResult] = []
    got = [read_source(source) for source in sources(items, unreadable)]
    assert got[0] == b"jpeg a"
    assert isinstance(got[1], ImageResult) and got[1].reason == "not found" and "gone.jpg" in (got[1].error or "")
    assert unreadable == []


def _records() -> dict[str, list[dict]]:
    """Each task's records, as the folder job writes them, from answers made here."""
    source = as_source("p/one.jpg")
    classes = Classification((3, 1), (0.75, 0.125), ("cat", "dog"))
    detections = Detections(((1.0, 2.0, 30.5, 40.25),), (0.9,), (17,), ("cat",))
    mask = np.zeros((4, 6), np.uint8)
    mask[:2] = 2
    segmentation = Segmentation(mask, (0.5, 0.0, 0.5), ("background", "x", "bird"), None)
    failed = ImageResult(as_source("p/bad.jpg"), error="refused: not an image", reason="refused")
    kinds = {
        CLASSIFICATION: (records.CLASSIFICATION, classes),
        DETECTION: (records.DETECTION, detections),
        PIPELINE: (records.PIPELINE, Detections(detections.boxes, (0.9,), (17,), ("cat",), objects=(classes,))),
        SEGMENTATION: (records.SEGMENTATION, segmentation),
    }
    return {
        task: [kind.record(ImageResult(source, answer), None), kind.record(failed, None)]
        for task, (kind, answer) in kinds.items()
    }


@pytest.mark.parametrize("task", sorted(SCHEMAS))
def test_each_tasks_records_round_trip_through_a_part(task, bucket):
    store = PartStore(f"{bucket}/out-{task}", task)
    store.prepare()
    written = _records()[task]
    store.write(written)
    assert store.records() == written, "the rows are the folder job's records, field for field"


def test_resume_reads_back_answered_and_failed_and_drops_the_failed_rows(bucket):
    store = PartStore(f"{bucket}/out", CLASSIFICATION)
    store.prepare()
    good, bad = _records()[CLASSIFICATION]
    store.write([good, bad])
    store.write([{**bad, "path": "p/also-bad.jpg"}])
    assert store.read_back() == ({"p/one.jpg"}, {"p/bad.jpg", "p/also-bad.jpg"})
    store.drop_failed()
    assert store.records() == [good]
    assert len(store.parts()) == 1, "a part of failed rows only is removed"


def test_a_part_of_another_task_is_refused(bucket):
    PartStore(f"{bucket}/out", SEGMENTATION).write(_records()[SEGMENTATION])
    with pytest.raises(UsageError, match="not a part of this task"):
        PartStore(f"{bucket}/out", DETECTION).read_back()


def test_the_command_stops_before_work_with_one_line(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    out = tmp_path / "out"
    missing = cli("batch", "classify", str(tmp_path / "nope"), "-o", str(out), "--url", "127.0.0.1:1")
    assert missing.returncode == 2 and missing.stderr.strip() == f"error: {tmp_path / 'nope'}: no such file or folder"
    no_server = cli("batch", "classify", str(tmp_path / "photos"), "-o", str(out), "--url", "127.0.0.1:1")
    assert no_server.returncode == 3 and no_server.stderr.startswith("error: cannot reach"), no_server.stderr
    assert "Traceback" not in no_server.stderr
    PartStore(str(out), CLASSIFICATION).write(_records()[CLASSIFICATION])
    again = cli("batch", "classify", str(tmp_path / "photos"), "-o", str(out), "--url", "127.0.0.1:1")
    assert again.returncode == 2 and "give --resume" in again.stderr
