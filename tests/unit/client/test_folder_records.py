"""Records (text, JSON Lines, CSV), --resume, the progress line and the summary (no server)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path, PurePath

import numpy as np
import pytest

from triton_vision_cli.main import build_parser, main
from triton_vision_client import records
from triton_vision_client.client import Classification, Detections
from triton_vision_client.folderjob import EXIT_SERVER, EXIT_USAGE, out_path
from triton_vision_client.inputs import ImageSource
from triton_vision_client.jobs import REFUSED, ImageResult
from triton_vision_client.progress import Progress, Summary
from triton_vision_client.segmentation import Segmentation

CAT = Classification(class_ids=(281, 282), scores=(0.75, 0.25), labels=("tabby, tabby cat", "tiger cat"))


def result(path: str, answer=None, error=None, reason=None) -> ImageResult:
    return ImageResult(ImageSource(Path(path), path, PurePath(Path(path).name)), answer, error, reason)


def written(fmt: str, kind, results, files=None) -> str:
    stream = io.StringIO()
    writer = records.RecordWriter(stream, fmt, kind)
    for item in results:
        writer.write(kind.record(item, files))
    return stream.getvalue()


def test_jsonl_has_one_record_per_image_with_the_answer_or_the_error():
    text = written(
        "jsonl",
        records.CLASSIFICATION,
        [result("a.jpg", CAT), result("b.gif", error="GIF is not supported", reason=REFUSED)],
    )
    first, second = (json.loads(line) for line in text.splitlines())
    assert first == {
        "path": "a.jpg",
        "classes": [
            {"class_id": 281, "label": "tabby, tabby cat", "score": 0.75},
            {"class_id": 282, "label": "tiger cat", "score": 0.25},
        ],
    }
    assert second == {"path": "b.gif", "error": "GIF is not supported", "reason": "refused"}


def test_csv_has_a_header_then_one_row_per_image_with_lists_joined():
    text = written(
        "csv",
        records.CLASSIFICATION,
        [result("a,b.jpg", CAT), result("c.jpg", error="no such file", reason="not found")],
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["path"] for r in rows] == ["a,b.jpg", "c.jpg"]
    assert rows[0]["label"] == "tabby, tabby cat" and rows[0]["class_id"] == "281" and rows[0]["score"] == "0.75"
    assert rows[0]["labels"] == "tabby, tabby cat|tiger cat" and rows[0]["error"] == ""
    assert rows[1]["error"] == "no such file" and rows[1]["reason"] == "not found" and rows[1]["label"] == ""


def test_text_lists_scores_and_labels_and_errors_with_their_reason():
    text = written(
        "text", records.CLASSIFICATION, [result("a.jpg", CAT), result("b.jpg", error="empty file", reason="empty")]
    )
    assert text.splitlines() == [
        "a.jpg:",
        "   0.7500   281  tabby, tabby cat",
        "   0.2500   282  tiger cat",
        "b.jpg: error (empty): empty file",
    ]


def test_detection_records_carry_boxes_and_the_annotated_file():
    found = Detections(boxes=((1.0, 2.0, 30.5, 40.25),), scores=(0.875,), class_ids=(1,), labels=("person",))
    text = written("jsonl", records.DETECTION, [result("a.jpg", found)], {"annotated": "out/a.detections.jpg"})
    assert json.loads(text) == {
        "path": "a.jpg",
        "detections": [{"label": "person", "class_id": 1, "score": 0.875, "box": [1.0, 2.0, 30.5, 40.25]}],
        "annotated": "out/a.detections.jpg",
    }
    row = next(csv.DictReader(io.StringIO(written("csv", records.DETECTION, [result("a.jpg", found)]))))
    assert row["count"] == "1" and row["boxes"] == "1.0 2.0 30.5 40.25"


def test_segmentation_records_give_size_classes_present_and_files():
    mask = np.array([[0, 15], [15, 15]], np.uint8)
    labels = tuple(f"class{i}" for i in range(21))
    fractions = tuple(0.25 if i == 0 else 0.75 if i == 15 else 0.0 for i in range(21))
    answer = Segmentation(mask=mask, fractions=fractions, labels=labels, overlay_png=None)
    record = records.SEGMENTATION.record(result("a.png", answer), {"mask": "out/a_mask.png"})
    assert record == {
        "path": "a.png",
        "height": 2,
        "width": 2,
        "classes": [
            {"class_id": 15, "label": "class15", "fraction": 0.75},
            {"class_id": 0, "label": "class0", "fraction": 0.25},
        ],
        "mask": "out/a_mask.png",
    }


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resume_reads_back_answered_and_failed_paths(tmp_path, fmt):
    output = tmp_path / f"records.{fmt}"
    output.write_text(
        written(fmt, records.CLASSIFICATION, [result("a.jpg", CAT), result("b.jpg", error="x", reason=REFUSED)])
    )
    assert records.read_back(output, fmt) == ({"a.jpg"}, {"b.jpg"})
    assert records.read_back(tmp_path / "absent.jsonl", fmt) == (set(), set())


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_dropping_failed_records_keeps_the_answered_ones_whole_and_the_files_mode(tmp_path, fmt):
    output = tmp_path / f"records.{fmt}"
    answered = [result("a,1.jpg", CAT), result("c.jpg", CAT)]
    output.write_text(
        written(
            fmt,
            records.CLASSIFICATION,
            [answered[0], result("b.jpg", error="has no available versions", reason="unavailable"), answered[1]],
        )
    )
    output.chmod(0o640)
    records.drop_failed_records(output, fmt)
    assert output.read_text() == written(fmt, records.CLASSIFICATION, answered)
    assert output.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == [output.name], "no scratch file left behind"


def test_resume_drops_a_record_cut_short_by_a_killed_job(tmp_path):
    output = tmp_path / "records.jsonl"
    whole = written("jsonl", records.CLASSIFICATION, [result("a.jpg", CAT)])
    output.write_text(whole + '{"path": "b.jpg", "clas')
    assert records.read_back(output, "jsonl") == ({"a.jpg"}, set())
    assert output.read_text() == whole


def test_resume_refuses_text_output_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="--resume needs --format"):
        records.read_back(tmp_path / "x.txt", "text")
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text("not json\n")
    with pytest.raises(ValueError, match="not a record"):
        records.read_back(foreign, "jsonl")
    foreign.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="not a record"):
        records.read_back(foreign, "jsonl")


def test_progress_writes_nothing_when_disabled_and_a_rate_and_eta_when_enabled():
    quiet = io.StringIO()
    progress = Progress(quiet, enabled=False, total=10)
    for _ in range(10):
        progress.update(True)
    progress.clear()
    assert quiet.getvalue() == ""

    now = [0.0]
    shown = io.StringIO()
    progress = Progress(shown, enabled=True, total=100, clock=lambda: now[0])
    now[0] = 2.0
    for _ in range(19):
        progress.update(True)
    progress.update(False)
    line = progress.line(now[0])
    assert "20/100" in line and "10.0 img/s" in line and "ETA 0:08" in line and "1 failed" in line
    assert shown.getvalue().startswith("\r")


def test_summary_counts_failures_by_reason_and_gives_the_rate():
    summary = Summary("classified")
    for index in range(8):
        summary.add(f"{index}.jpg", None, None)
    summary.add("x.gif", "GIF is not supported", "refused")
    summary.add("y.jpg", "no such file", "not found")
    head, *rest = summary.lines(5.0)
    assert head == "classified 8 of 10 images in 0:05 (5.0 s, 2.0 images/s); 2 failed: 1 refused, 1 not found"
    assert "  x.gif: GIF is not supported" in rest


def test_summary_grammar_and_no_rate_for_nothing_answered_or_no_time():
    one = Summary("classified", skipped_not_images=1)
    one.add("a.jpg", "no such file", "not found")
    assert one.lines(0.007)[:2] == [
        "classified 0 of 1 image in 0:00 (0.0 s); 1 failed: 1 not found",
        "ignored 1 file in the folders that is not an image",
    ]
    slow = Summary("detected objects in")
    slow.add("a.jpg", None, None)
    slow.add("b.jpg", None, None)
    assert slow.lines(41.0) == ["detected objects in 2 of 2 images in 0:41 (41.0 s, 20.5 s per image)"]
    quick = Summary("classified", skipped_not_images=3)
    quick.add("a.jpg", None, None)
    assert quick.lines(0.01) == [
        "classified 1 of 1 image in 0:00 (0.0 s)",
        "ignored 3 files in the folders that are not images",
    ]


def test_the_summary_says_how_many_requests_were_sent_again():
    summary = Summary("classified")
    summary.add("a.jpg", None, None)
    summary.retried("Request for unknown model: 'classification' has no available versions")
    summary.retried("Exceeds maximum queue size")
    assert summary.lines(2.0)[1] == (
        "sent 2 requests again after the server said it was temporarily unavailable "
        "(first: Request for unknown model: 'classification' has no available versions)"
    )


def test_an_interrupted_summary_says_how_many_were_sent_and_not_answered_and_not_sent():
    summary = Summary("segmented", sent=6, given=12)
    for index in range(4):
        summary.add(f"{index}.jpg", None, None)
    assert summary.lines(2.0, stopped="interrupted")[0] == (
        "segmented 4 of 12 images in 0:02 (2.0 s, 2.0 images/s); 8 not answered: 2 sent, 6 not sent"
    )
    from_stdin = Summary("classified", sent=5)
    from_stdin.add("a.jpg", None, None)
    assert from_stdin.lines(1.0, stopped="interrupted")[0] == (
        "classified 1 of 1 image in 0:01 (1.0 s, 1.0 images/s); "
        "4 sent and not answered, the rest of the inputs not sent"
    )


def test_outputs_mirror_the_input_tree_under_out(tmp_path):
    source = ImageSource(Path("photos/sub/a.jpg"), "photos/sub/a.jpg", PurePath("sub/a.jpg"))
    target = out_path(tmp_path / "out", source, ".detections.jpg")
    assert target == tmp_path / "out" / "sub" / "a.detections.jpg" and target.parent.is_dir()


def test_inputs_may_follow_options_and_bad_numbers_are_usage_errors(capsys):
    args, extra = build_parser("classify").parse_known_args(["classify", "a/", "--top-k", "3", "b.jpg", "-"])
    assert args.images == ["a/"] and extra == ["b.jpg", "-"]  # main() appends them (next test)
    for bad in (
        ["classify", "x.jpg", "--top-k", "0"],
        ["detect", "x.jpg", "--threshold", "1.5"],
        ["classify", "x", "--concurrency", "0"],
    ):
        with pytest.raises(SystemExit) as info:
            build_parser(bad[0]).parse_args(bad)
        assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_no_server_is_exit_status_3_naming_the_url_and_serve(tmp_path, capsys):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    output = tmp_path / "records.jsonl"
    code = main(["classify", str(image), "--url", f"127.0.0.1:{port}", "--format", "jsonl", "-o", str(output)])
    err = capsys.readouterr().err
    assert code == EXIT_SERVER
    assert f"127.0.0.1:{port}" in err and "triton-vision serve" in err and "Traceback" not in err
    assert not output.exists(), "nothing is written when no server answers"


def test_resume_without_an_output_file_is_a_usage_error(capsys):
    assert main(["classify", "x.jpg", "--resume", "--format", "jsonl"]) == EXIT_USAGE
    assert "--resume needs --output" in capsys.readouterr().err
    assert main(["classify", "x.jpg", "--keep-failed", "-o", "x.jsonl", "--format", "jsonl"]) == EXIT_USAGE
    assert capsys.readouterr().err.strip() == "error: --keep-failed goes with --resume"


def test_the_summary_says_how_many_subfolders_were_skipped_without_recursive():
    summary = Summary("classified", skipped_subfolders=2)
    summary.add("a.jpg", None, None)
    assert summary.lines(1.0)[1] == "skipped 2 subfolders (give -r to take their images too)"
    one = Summary("classified", skipped_subfolders=1)
    assert one.lines(1.0)[-1] == "skipped 1 subfolder (give -r to take its images too)"
