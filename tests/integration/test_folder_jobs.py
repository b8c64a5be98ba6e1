"""Folder jobs through the real tritonserver: trees with bad files, JSONL against single requests,
progress only on terminals, --resume, annotated outputs mirroring the tree, bounded client memory,
a job surviving a model reload, and the words for a wrong --batch or a wrong port. (Any ensemble of
a task, prefixed or named otherwise: test_any_ensemble.py.)"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, ensemble_repository
from tests.integration.conftest import running_server
from tests.support.cli import JOB_TIMEOUT_S, cli, encode, jsonl, url_of
from tests.support.detection import bright_rectangle_image
from tests.support.images import corrupt_images
from triton_vision_client.client import VisionClient
from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration

SCORE_TOLERANCE = 1e-5  # the same image answered in a batch or alone: same pipeline, same numbers


@pytest.fixture(scope="module")
def photo_tree(tmp_path_factory, chelsea_rgb) -> tuple[Path, dict[str, str | None]]:
    """A tree of good, corrupt, refused, empty and non-image files -> {path: expected failure reason}."""
    root = tmp_path_factory.mktemp("photos")
    small = cv2.resize(chelsea_rgb, (150, 100))
    files: dict[str, tuple[bytes, str | None]] = {
        "chelsea.jpg": (encode(chelsea_rgb, ".jpg"), None),
        "chelsea.png": (encode(chelsea_rgb, ".png"), None),
        "flipped.jpg": (encode(chelsea_rgb[:, ::-1].copy(), ".jpg"), None),
        "sub/small.jpg": (encode(small, ".jpg"), None),
        "sub/deeper/small.png": (encode(small, ".png"), None),
        "sub/deeper/grey.png": (encode(np.full((60, 80, 3), 128, np.uint8), ".png"), None),
        "sub/corrupt.png": (corrupt_images(chelsea_rgb)["PNG with corrupted image data"], "refused"),
        "sub/deeper/text.jpg": (b"hello, this is not an image", "refused"),
        "truncated.jpg": (encode(chelsea_rgb, ".jpg")[:4000], "refused"),
        "empty.png": (b"", "empty"),
        "README.txt": (b"not an image, not sent", "ignored"),
    }
    expected = {}
    for name, (data, reason) in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if reason != "ignored":
            expected[str(path)] = reason
    return root, expected


def test_a_folder_tree_gets_one_record_per_image_equal_to_single_requests(classification_server, photo_tree):
    root, expected = photo_tree
    url = classification_server.options.grpc_url
    done = cli(
        "classify", str(root), "--recursive", "--format", "jsonl", "--url", url, "--concurrency", "3", "--top-k", "3"
    )
    assert done.returncode == 1, done.stderr  # some images failed
    records = jsonl(done.stdout)
    assert set(records) == set(expected), "every image file once, the .txt file ignored"
    with VisionClient(url) as client:
        for path, reason in expected.items():
            record = records[path]
            if reason is None:
                (alone,) = client.classify([Path(path).read_bytes()], top_k=3)
                assert [c["class_id"] for c in record["classes"]] == list(alone.class_ids), path
                assert [c["label"] for c in record["classes"]] == list(alone.labels), path
                scores = [c["score"] for c in record["classes"]]
                np.testing.assert_allclose(scores, alone.scores, atol=SCORE_TOLERANCE, err_msg=path)
            else:
                assert record["reason"] == reason and record["error"], record
    refused = records[str(root / "sub/deeper/text.jpg")]["error"]
    assert "image 0" in refused and "not a JPEG or PNG" in refused
    # docs/client.md quotes this refusal as the job prints it
    assert f"error (refused): {refused}`" in (ROOT / "docs" / "client.md").read_text().replace("\n  ", " "), refused
    assert "corrupt" in records[str(root / "sub/corrupt.png")]["error"]
    assert "empty" in records[str(root / "empty.png")]["error"]
    # Not a terminal: no progress line, only the summary.
    assert "\r" not in done.stderr and "img/s" not in done.stderr and "ETA" not in done.stderr
    assert "classified 6 of 10 images" in done.stderr and "3 refused, 1 empty" in done.stderr
    assert "Traceback" not in done.stderr


def test_files_globs_and_paths_on_stdin_with_missing_ones_reported(classification_server, photo_tree, tmp_path):
    root, _ = photo_tree
    url = classification_server.options.grpc_url
    stdin = f"{root / 'chelsea.jpg'}\n{root / 'nowhere.jpg'}\n"
    output = tmp_path / "records.csv"
    pattern = str(root / "sub" / "**" / "*.png")
    done = cli(
        "classify",
        "-",
        pattern,
        str(root / "missing.png"),
        "--format",
        "csv",
        "-o",
        str(output),
        "--url",
        url,
        stdin=stdin,
    )
    assert done.returncode == 1 and done.stdout == ""
    lines = output.read_text().splitlines()
    assert lines[0] == "path,error,reason,label,class_id,score,labels,class_ids,scores"
    rows = {line.split(",")[0]: line for line in lines[1:]}
    assert set(rows) == {
        str(root / "chelsea.jpg"),
        str(root / "nowhere.jpg"),
        str(root / "missing.png"),
        str(root / "sub/corrupt.png"),
        str(root / "sub/deeper/small.png"),
        str(root / "sub/deeper/grey.png"),
    }
    assert f",no such file or directory: {root / 'missing.png'},not found," in rows[str(root / "missing.png")]


def test_progress_line_on_a_terminal_with_rate_and_eta(classification_server, photo_tree):
    root, _ = photo_tree
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "triton_vision_cli", "classify", str(root), "-r", "--format", "jsonl"]
            + ["--url", classification_server.options.grpc_url, "--output", os.devnull],
            stdout=subprocess.DEVNULL,
            stderr=secondary,
            cwd=ROOT,
        )
        os.close(secondary)
        seen = b""
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the terminal closed: the job ended
                    break
                if not chunk:
                    break
                seen += chunk
            elif process.poll() is not None:
                break
        assert process.wait(timeout=60) == 1
    finally:
        os.close(primary)
    text = seen.decode(errors="replace")
    assert "\r" in text and "img/s" in text and "ETA" in text and "/10" in text, text
    assert "classified 6 of 10 images" in text


def test_resume_skips_answered_images_resends_failed_ones_and_keeps_one_record_each(
    classification_server, photo_tree, tmp_path
):
    root, expected = photo_tree
    url = classification_server.options.grpc_url
    output = tmp_path / "records.jsonl"
    first = cli("classify", str(root), "-r", "--format", "jsonl", "-o", str(output), "--url", url)
    assert first.returncode == 1
    lines = output.read_text().splitlines()
    # As if the job had been killed after three records, in the middle of the fourth.
    output.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    answered = sum("error" not in json.loads(line) for line in lines[:3])
    again = cli("classify", str(root), "-r", "--format", "jsonl", "-o", str(output), "--url", url, "--resume")
    assert again.returncode == 1
    assert (f"skipped {answered} already in the output file" in again.stderr) == (answered > 0)
    records = jsonl(output.read_text())
    assert set(records) == set(expected)
    assert records == {json.loads(line)["path"]: json.loads(line) for line in lines}


def test_resume_sends_failed_images_again_unless_told_to_keep_them(classification_server, tmp_path, chelsea_rgb):
    folder = tmp_path / "in"
    folder.mkdir()
    good = encode(chelsea_rgb, ".png")
    (folder / "good.png").write_bytes(good)
    (folder / "late.png").write_bytes(good[:300])  # truncated: refused
    output = tmp_path / "records.jsonl"
    url = classification_server.options.grpc_url
    job = ("classify", str(folder), "--format", "jsonl", "-o", str(output), "--url", url)
    assert cli(*job).returncode == 1
    assert jsonl(output.read_text())[str(folder / "late.png")]["reason"] == "refused"
    kept = cli(*job, "--resume", "--keep-failed")
    assert kept.returncode == 0, kept.stderr
    assert "skipped 2 already in the output file" in kept.stderr
    (folder / "late.png").write_bytes(good)  # the file arrives whole
    again = cli(*job, "--resume")
    assert again.returncode == 0, again.stderr
    assert "skipped 1 already in the output file" in again.stderr and "classified 1 of 1 image" in again.stderr
    records = jsonl(output.read_text())
    assert set(records) == {str(folder / "good.png"), str(folder / "late.png")}
    assert records[str(folder / "late.png")]["classes"] == records[str(folder / "good.png")]["classes"]


def test_a_batch_above_the_ensembles_maximum_is_refused_before_sending(classification_server, tmp_path, chelsea_rgb):
    from tests.support.modelconfigs import load_config

    image = tmp_path / "a.png"
    image.write_bytes(encode(chelsea_rgb, ".png"))
    maximum = load_config(classification_server.options.model_repository / t.CLASSIFICATION).max_batch_size
    done = cli("classify", str(image), "--batch", str(maximum * 2), "--url", classification_server.options.grpc_url)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: the 'classification' ensemble takes at most {maximum} images per request (its max_batch_size), "
        f"not {maximum * 2}: give --batch {maximum} or less, or leave it out"
    )
    assert done.stdout == ""


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_top_k_above_the_class_count_is_refused_before_sending(classification_server, tmp_path, protocol):
    for index in range(3):
        (tmp_path / f"{index}.png").write_bytes(encode(np.full((40, 50, 3), 60 * index, np.uint8), ".png"))
    url = url_of(classification_server, protocol)
    done = cli("classify", str(tmp_path), "--top-k", "5000", "--url", url, "--protocol", protocol)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "error: the 'classification' ensemble has 1000 classes: --top-k 5000 asks for more labels than it has "
        "(give --top-k 1000 or less)"
    )
    assert done.stdout == ""
    every = cli("classify", str(tmp_path), "--top-k", "1000", "--url", url, "--protocol", protocol, "--format", "jsonl")
    assert every.returncode == 0, every.stderr
    assert {len(record["classes"]) for record in jsonl(every.stdout).values()} == {1000}


def test_the_other_protocols_port_is_named_with_the_fix(classification_server, tmp_path):
    """No port is suggested unless it answered: serve's free ports keep no layout (8000, 8001)."""
    options = classification_server.options
    host = options.client_host
    grpc_to_http = cli("classify", "x.jpg", "--url", options.http_url)
    assert grpc_to_http.returncode == 3
    grpc = (
        f"--url {host}:{options.grpc_port} (its gRPC port)"
        if options.grpc_port == options.http_port + 1
        else "--url with the server's gRPC port"
    )
    assert grpc_to_http.stderr.strip() == (
        f"error: {options.http_url} answers HTTP, not gRPC: use --protocol http, or {grpc}"
    )
    http_to_grpc = cli("ensembles", "--url", options.grpc_url, "--protocol", "http")
    assert http_to_grpc.returncode == 3
    http = (
        f"--url {host}:{options.http_port} (its HTTP port)"
        if options.http_port == options.grpc_port - 1
        else "--url with the server's HTTP port"
    )
    assert http_to_grpc.stderr.strip() == (
        f"error: {options.grpc_url} answers gRPC, not HTTP: use --protocol grpc, or {http}"
    )


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_metrics_port_is_named_as_one_and_no_port_is_guessed(classification_server, protocol):
    options = classification_server.options
    metrics = f"{options.client_host}:{options.metrics_port}"
    for command in (["classify", "x.jpg"], ["ensembles"], ["probe"]):
        done = cli(*command, "--url", metrics, "--protocol", protocol)
        assert done.returncode == (1 if command == ["probe"] else 3), done.stderr
        line = done.stderr.strip().splitlines()[-1]
        head = f"{metrics} is a metrics port (Prometheus text at /metrics), not Triton's gRPC or HTTP: "
        assert line.startswith(("error: " + head, "UNHEALTHY: " + head)), line
        if options.metrics_port - options.grpc_port != 1 and options.metrics_port - options.http_port != 2:
            assert line.endswith("`triton-vision serve` prints its ports when it is ready"), line


def test_detect_writes_annotated_images_mirroring_the_tree(bright_box_detection_server, tmp_path):
    root = tmp_path / "in"
    (root / "a" / "b").mkdir(parents=True)
    box = (40, 30, 120, 90)
    good = encode(bright_rectangle_image(150, 200, box), ".png")
    (root / "top.png").write_bytes(good)
    (root / "a" / "b" / "deep.png").write_bytes(good)
    (root / "a" / "bad.jpg").write_bytes(b"GIF89a not really")
    out = tmp_path / "out"
    url = bright_box_detection_server.options.grpc_url
    done = cli("detect", str(root), "-r", "--out", str(out), "--format", "jsonl", "--url", url)
    assert done.returncode == 1, done.stderr
    records = jsonl(done.stdout)
    deep = records[str(root / "a" / "b" / "deep.png")]
    assert deep["annotated"] == str(out / "a" / "b" / "deep.detections.jpg")
    with VisionClient(url) as client:
        (alone,) = client.detect([good])
    assert [d["box"] for d in deep["detections"]] == [[round(v, 2) for v in b] for b in alone.boxes]
    assert cv2.imread(deep["annotated"]).shape[:2] == (150, 200)
    assert (out / "top.detections.jpg").is_file()
    assert records[str(root / "a" / "bad.jpg")]["reason"] == "refused"
    assert "GIF is not supported" in records[str(root / "a" / "bad.jpg")]["error"]
    assert not (out / "a" / "bad.detections.jpg").exists()


def test_segment_writes_masks_mirroring_the_tree(segmentation_known_answer_server, tmp_path):
    from tests.support.segmentation import png, synthetic

    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    image, expected_mask = synthetic(389, 520)
    (root / "sub" / "shapes.png").write_bytes(png(image))
    (root / "sub" / "broken.png").write_bytes(png(image)[:300])
    out = tmp_path / "out"
    done = cli(
        "segment",
        str(root),
        "-r",
        "--out",
        str(out),
        "--format",
        "csv",
        "--url",
        segmentation_known_answer_server.options.grpc_url,
    )
    assert done.returncode == 1, done.stderr
    mask = Image.open(out / "sub" / "shapes_mask.png")
    np.testing.assert_array_equal(np.asarray(mask), expected_mask)
    assert "truncated PNG" in done.stdout and str(out / "sub" / "shapes_mask.png") in done.stdout
    # The overlay is the server's, with a legend drawn in its top-left corner.
    written = np.asarray(Image.open(io.BytesIO((out / "sub" / "shapes_overlay.png").read_bytes())).convert("RGB"))
    with VisionClient(segmentation_known_answer_server.options.grpc_url) as client:
        (served,) = client.segment([png(image)], overlay=True)
    original = np.asarray(Image.open(io.BytesIO(served.overlay_png)).convert("RGB"))
    assert written.shape == original.shape == (389, 520, 3)
    changed = np.argwhere((written != original).any(axis=2))
    assert len(changed) > 500, "a legend was drawn"
    assert changed[:, 0].max() < 389 // 2 and changed[:, 1].max() < 520 // 2, "in the top-left corner only"


# -- bounded client memory on thousands of images ------------------------------------------------
def tiny_classifier():
    """The resnet18 tensor signature, a tiny graph (mean colour -> 1000 logits): the server is quick,
    so thousands of images take seconds and the client's memory is what is measured."""
    import onnx
    from onnx import helper, numpy_helper

    weights = np.random.default_rng(0).normal(size=(3, 1000)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", [t.CLASSIFIER_INPUT], ["mean"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["mean", "weights"], [t.CLASSIFIER_OUTPUT]),
        ],
        "tiny_classifier",
        [helper.make_tensor_value_info(t.CLASSIFIER_INPUT, onnx.TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info(t.CLASSIFIER_OUTPUT, onnx.TensorProto.FLOAT, ["N", 1000])],
        [numpy_helper.from_array(weights, "weights")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture(scope="module")
def tiny_classification_server(tmp_path_factory):
    import onnx

    from triton_vision_authoring import models as model_files

    repository = ensemble_repository(tmp_path_factory.mktemp("tiny_classification_repo"), t.CLASSIFICATION)
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(tiny_classifier(), str(path))
    model_files.prepare(repository, model_files.CATALOGUE[t.CLASSIFIER], from_path=path)
    with running_server(repository) as server:
        yield server


THOUSANDS = 5000
RSS_GROWTH_LIMIT_MB = 50


def rss_kb(pid: int) -> int | None:
    """Resident memory of a running process; None once it has exited (a zombie has no VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read the client's memory")
def test_client_memory_stays_flat_from_500_to_5000_images(tiny_classification_server, tmp_path):
    """5,000 distinct 128x128 noise JPEGs (~100 MB in all): RSS grows <= 50 MB from image 500 to the end."""
    folder = tmp_path / "many"
    rng = np.random.default_rng(1)
    total_bytes = 0
    for index in range(THOUSANDS):
        data = encode(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), ".jpg")
        (folder / f"{index // 1000}").mkdir(parents=True, exist_ok=True)
        (folder / f"{index // 1000}" / f"{index:05d}.jpg").write_bytes(data)
        total_bytes += len(data)
    # A client holding the files it has read would grow by images 500..5000's bytes: more than the limit.
    assert total_bytes * (THOUSANDS - 500) / THOUSANDS > 1.5 * RSS_GROWTH_LIMIT_MB * 1024 * 1024
    output = tmp_path / "records.jsonl"
    command = [sys.executable, "-m", "triton_vision_cli", "classify", str(folder), "-r", "--format", "jsonl"]
    command += ["-o", str(output), "--url", tiny_classification_server.options.grpc_url, "--concurrency", "8"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, text=True)
    at_500 = None
    peak_after = 0
    deadline = time.monotonic() + 600
    try:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                rss = rss_kb(process.pid)
                size = output.stat().st_size
            except (FileNotFoundError, ProcessLookupError):
                rss = None
            if rss is None:
                time.sleep(0.05)
                continue
            with open(output, "rb") as handle:
                written = handle.read(size).count(b"\n")
            if at_500 is None and written >= 500:
                at_500 = rss
            if at_500 is not None:
                peak_after = max(peak_after, rss)
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert sum(1 for _ in open(output)) == THOUSANDS
    assert at_500 is not None
    growth_mb = (peak_after - at_500) / 1024
    report = {"images": THOUSANDS, "rss_at_500_mb": at_500 / 1024, "peak_rss_after_mb": peak_after / 1024}
    report["growth_mb"] = growth_mb
    report["summary"] = next(line for line in stderr.splitlines() if line.startswith("classified"))
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "folder-job-memory.json").write_text(json.dumps(report, indent=2))
    print(report)
    assert growth_mb <= RSS_GROWTH_LIMIT_MB, report
    shutil.rmtree(folder)


def test_ctrl_c_keeps_whole_records_and_resume_finishes_the_job(tiny_classification_server, tmp_path):
    import signal

    folder = tmp_path / "folder"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for index in range(2000):
        (folder / f"{index:05d}.jpg").write_bytes(encode(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), ".jpg"))
    output = tmp_path / "records.jsonl"
    url = tiny_classification_server.options.grpc_url
    command = [sys.executable, "-m", "triton_vision_cli", "classify", str(folder), "--format", "jsonl"]
    # one image per request, one request at a time: the job lasts long enough to be interrupted
    command += ["-o", str(output), "--url", url, "--batch", "1", "--concurrency", "1"]
    # An ignored SIGINT is inherited across exec (a shell's background job ignores it; in one full
    # run of the suite the CLI here ignored it too): give the CLI the default, as a terminal would.
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        if output.exists() and output.read_bytes().count(b"\n") >= 100:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # seen once, in a full run: say where it hangs (faulthandler)
        process.send_signal(signal.SIGABRT)
        _, stderr = process.communicate(timeout=60)
        pytest.fail(f"the job did not stop within 60 s of Ctrl-C; its threads:\n{stderr[-6000:]}")
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr and "Traceback" not in stderr
    kept = output.read_text()
    assert kept.endswith("\n")
    first = [json.loads(line)["path"] for line in kept.splitlines()]  # every record whole
    assert 100 <= len(first) < 2000
    # The summary counts the images not answered: those sent (in flight) and those never sent.
    summary = re.search(r"classified (\d+) of (\d+) images .*; (\d+) not answered: (\d+) sent, (\d+) not sent", stderr)
    assert summary, stderr
    answered, given, unanswered, in_flight, unsent = (int(group) for group in summary.groups())
    assert (answered, given) == (len(first), 2000)
    assert unanswered == in_flight + unsent == 2000 - len(first) and in_flight <= 2  # 1 request of 1 image, 1 read
    again = cli("classify", str(folder), "--format", "jsonl", "-o", str(output), "--url", url, "--resume")
    assert again.returncode == 0, again.stderr
    assert f"skipped {len(first)} already" in again.stderr
    paths = [json.loads(line)["path"] for line in output.read_text().splitlines()]
    assert sorted(paths) == sorted(str(p) for p in folder.iterdir())


# -- a job while the server reloads a model ---------------------------------------------------------
@pytest.fixture
def reloadable_tiny_server(tmp_path):
    """The tiny classifier on a private server whose models the test may unload and load (its
    ensemble's steps as separate models: unloading the classifier takes the ensemble down, as in
    the NGC container)."""
    import onnx

    from triton_vision_authoring import models as model_files

    repository = ensemble_repository(tmp_path / "reloadable_repo", t.CLASSIFICATION)
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_classifier(), str(path))
    model_files.prepare(repository, model_files.CATALOGUE[t.CLASSIFIER], from_path=path)
    with running_server(repository, allow_model_control=True, fuse=False) as server:
        yield server


RELOAD_IMAGES = 400
DOWN_S = 3.0  # the classifier stays unloaded this long, longer than a request takes


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_job_running_while_a_model_is_unloaded_and_loaded_again_answers_every_image(
    reloadable_tiny_server, tmp_path, protocol
):
    server = reloadable_tiny_server
    folder = tmp_path / "folder"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for index in range(RELOAD_IMAGES):
        (folder / f"{index:04d}.jpg").write_bytes(encode(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), ".jpg"))
    output = tmp_path / "records.jsonl"
    url = url_of(server, protocol)
    command = [sys.executable, "-m", "triton_vision_cli", "classify", str(folder), "--format", "jsonl"]
    command += ["-o", str(output), "--url", url, "--protocol", protocol, "--batch", "1", "--concurrency", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, text=True)
    try:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            if output.exists() and output.read_bytes().count(b"\n") >= 40:
                break
            time.sleep(0.01)
        server.admin.unload_model(t.CLASSIFIER)
        assert not server.admin.model_ready(t.CLASSIFICATION), "the ensemble is down while its classifier is unloaded"
        assert process.poll() is None, "the job outlasts the unload"
        before = output.read_bytes().count(b"\n")
        time.sleep(DOWN_S)
        assert output.read_bytes().count(b"\n") <= before + 2, "nothing is answered while the model is unloaded"
        server.admin.load_model(t.CLASSIFIER)
        _, stderr = process.communicate(timeout=JOB_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    records = jsonl(output.read_text())
    assert len(records) == RELOAD_IMAGES and all("classes" in r for r in records.values()), stderr
    assert f"classified {RELOAD_IMAGES} of {RELOAD_IMAGES} images" in stderr
    assert "again after the server said it was temporarily unavailable (first: " in stderr
