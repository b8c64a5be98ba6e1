"""`triton-vision batch` on a local Ray cluster with two real servers: a few hundred real photos
answered as the single-machine folder job answers them (one Parquet row per image, the same
fields), both servers used, a broken image a failed row, and a killed run resumed without redoing
an image. The images/s of both jobs are printed, never asserted."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from tests.conftest import ROOT
from tests.integration.conftest import running_server
from tests.support.cli import JOB_TIMEOUT_S, cli, encode

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")

from triton_vision_batch.parquet import PartStore  # noqa: E402
from triton_vision_contract import CLASSIFICATION  # noqa: E402

PHOTOS = 300
SCORE_TOLERANCE = 1e-5  # the same image in another batch, on another server: same pipeline, same numbers
BROKEN = "broken.jpg"
TOP_K = "3"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """PHOTOS different JPEGs cut from four real photos (scikit-image's), and a truncated JPEG."""
    from skimage import data

    bases = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket()]
    root = tmp_path_factory.mktemp("batch_photos")
    for index in range(PHOTOS):
        base = bases[index % len(bases)]
        height, width = base.shape[:2]
        step = index // len(bases)
        top, left = (step * 7) % (height // 3), (step * 11) % (width // 3)
        crop = base[top : top + 2 * height // 3, left : left + 2 * width // 3]
        small = cv2.resize(crop, (160, int(160 * crop.shape[0] / crop.shape[1])))
        (root / f"photo-{index:03d}.jpg").write_bytes(encode(small if step % 2 == 0 else small[:, ::-1].copy(), ".jpg"))
    (root / BROKEN).write_bytes(encode(bases[0], ".jpg")[:3000])
    return root


@pytest.fixture(scope="module")
def two_servers(classification_repository):
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(running_server(classification_repository)) for _ in range(2)]


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray cluster, started here (as a test or a notebook would); batch jobs join it."""
    context = ray.init(num_cpus=4, include_dashboard=False, object_store_memory=128 * 1024 * 1024, log_to_driver=False)
    yield context.address_info["gcs_address"]
    ray.shutdown()


def batch_args(photos: Path, out: Path, servers, address: str, *extra: str) -> list[str]:
    urls = [arg for server in servers for arg in ("--url", server.options.grpc_url)]
    return ["batch", "classify", str(photos), "-o", str(out), *urls, "--ray-address", address, "--top-k", TOP_K, *extra]


def successes(server) -> int:
    from tritonclient.grpc import InferenceServerClient

    stats = InferenceServerClient(server.options.grpc_url).get_inference_statistics(CLASSIFICATION, as_json=True)
    return int(stats["model_stats"][0]["inference_stats"]["success"].get("count", 0))


def rate(done: subprocess.CompletedProcess) -> str:
    summary = done.stderr.strip().splitlines()
    return next((line for line in summary if "images/s" in line), summary[0] if summary else "")


def test_a_batch_over_two_servers_answers_as_the_folder_job(photos, two_servers, ray_address, tmp_path):
    first, second = two_servers
    lines = tmp_path / "folder.jsonl"
    started = time.monotonic()
    folder = cli("classify", str(photos), "--format", "jsonl", "-o", str(lines), "--url", first.options.grpc_url,
                 "--top-k", TOP_K)  # fmt: skip
    folder_s = time.monotonic() - started
    assert folder.returncode == 1, folder.stderr  # the broken image
    before = [successes(server) for server in two_servers]
    out = tmp_path / "parquet"
    started = time.monotonic()
    batch = cli(*batch_args(photos, out, two_servers, ray_address, "--chunk", "16"))
    batch_s = time.monotonic() - started
    assert batch.returncode == 1, batch.stderr
    print(f"\nfolder job, one server: {PHOTOS + 1} images in {folder_s:.1f} s ({(PHOTOS + 1) / folder_s:.1f} images/s)")
    print(f"batch on Ray, two servers: {PHOTOS + 1} images in {batch_s:.1f} s ({(PHOTOS + 1) / batch_s:.1f} images/s)")
    print(f"  folder job: {rate(folder)}\n  batch: {rate(batch)}")

    expected = {r["path"]: r for r in map(json.loads, lines.read_text().splitlines())}
    rows = PartStore(str(out), CLASSIFICATION).records()
    got = {r["path"]: r for r in rows}
    assert len(rows) == len(got) == PHOTOS + 1, "one row per image"
    assert set(got) == set(expected)
    for path, record in expected.items():
        row = got[path]
        if "error" in record:
            assert Path(path).name == BROKEN
            assert row["reason"] == record["reason"] == "refused" and row["error"], row
            continue
        assert set(row) == set(record), "the same fields as the JSON Lines record"
        for mine, theirs in zip(row["classes"], record["classes"], strict=True):
            assert (mine["class_id"], mine["label"]) == (theirs["class_id"], theirs["label"]), path
            assert mine["score"] == pytest.approx(theirs["score"], abs=SCORE_TOLERANCE), path
    after = [successes(server) for server in two_servers]
    assert all(now > then for now, then in zip(after, before, strict=True)), f"both servers answered: {before} {after}"
    assert "skipped" not in batch.stderr


def test_a_killed_batch_resumes_without_redoing_an_image(photos, two_servers, ray_address, tmp_path):
    out = tmp_path / "parquet"
    store = PartStore(str(out), CLASSIFICATION)
    args = batch_args(photos, out, two_servers, ray_address, "--chunk", "8", "--concurrency", "1")
    job = subprocess.Popen([sys.executable, "-m", "triton_vision_cli", *args], cwd=ROOT, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while len(store.parts()) < 3 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        job.send_signal(signal.SIGKILL)  # a crash: no handler runs
    finally:
        job.wait(timeout=30)
        assert job.stderr is not None
        job.stderr.close()
    killed = store.records()
    assert 0 < len(killed) < PHOTOS + 1, f"killed mid-way: {len(killed)} rows"
    done_before = {r["path"] for r in killed if "error" not in r}
    parts_before = set(store.parts())

    resumed = cli(*[*args, "--resume"])
    assert resumed.returncode == 1, resumed.stderr  # the broken image, again
    assert f"skipped {len(done_before)} already" in resumed.stderr, resumed.stderr
    new = [
        r
        for part in set(store.parts()) - parts_before
        for r in PartStore(str(out), CLASSIFICATION)._read(part).to_pylist()
    ]
    assert not {r["path"] for r in new} & done_before, "no answered image is sent again"
    final = store.records()
    paths = [r["path"] for r in final]
    assert len(paths) == len(set(paths)) == PHOTOS + 1, "every image once"
    assert {Path(r["path"]).name for r in final if "error" in r} == {BROKEN}


def test_without_a_cluster_the_command_starts_a_local_ray(photos, two_servers, tmp_path):
    few = tmp_path / "few"
    few.mkdir()
    for path in sorted(photos.glob("photo-00*.jpg"))[:12]:
        (few / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "parquet"
    urls = [arg for server in two_servers for arg in ("--url", server.options.grpc_url)]
    env_free = cli("batch", "classify", str(few), "-o", str(out), *urls, "--chunk", "4", "--actors", "2")
    assert env_free.returncode == 0, env_free.stderr
    assert sorted(r["path"] for r in PartStore(str(out), CLASSIFICATION).records()) == sorted(
        str(p) for p in few.iterdir()
    )
    assert "wrote 3 Parquet parts" in env_free.stderr
