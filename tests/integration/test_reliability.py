"""Bad input through the real server: each bad request fails alone, with a message naming the
problem; good requests batched with bad ones keep their answers; memory does not grow."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.conftest import ROOT
from tests.support.images import accepted_images, corrupt_images, refused_images
from tests.support.processes import memory, server_processes
from triton_vision_client.client import ClientError, VisionClient
from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def url(classification_server) -> str:
    return classification_server.options.grpc_url


@pytest.fixture(scope="module")
def client(url):
    with VisionClient(url, "grpc") as c:
        yield c


@pytest.fixture(scope="module")
def good(chelsea_rgb) -> dict[str, bytes]:
    return accepted_images(chelsea_rgb)


def raw_infer(url: str, array: np.ndarray, datatype: str = "UINT8", parameters=None):
    tensor = grpcclient.InferInput(t.IMAGE, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    with grpcclient.InferenceServerClient(url) as client:
        return client.infer(t.CLASSIFICATION, [tensor], parameters=parameters)


# -- table: images the guard refuses, and images only the decoder can find corrupt ----------------
@pytest.mark.parametrize("name", sorted(refused_images(np.zeros((8, 8, 3), np.uint8))))
def test_refused_image_gets_invalid_arg_naming_the_problem(client, chelsea_rgb, name):
    data, phrase = refused_images(chelsea_rgb)[name]
    with pytest.raises(ClientError) as info:
        client.classify([data])
    assert phrase in str(info.value)
    assert "image 0" in str(info.value)


@pytest.mark.parametrize("name", sorted(corrupt_images(np.zeros((8, 8, 3), np.uint8))))
def test_corrupt_image_fails_in_the_decoder_with_a_message_naming_the_image(client, chelsea_rgb, name):
    with pytest.raises(ClientError, match="image 1 is corrupt or truncated"):
        client.classify([accepted_images(chelsea_rgb)["RGB PNG"], corrupt_images(chelsea_rgb)[name]])


@pytest.mark.parametrize("name", sorted(accepted_images(np.zeros((8, 8, 3), np.uint8))))
def test_supported_kinds_are_answered(client, good, name):
    (result,) = client.classify([good[name]], top_k=3)
    assert len(result.class_ids) == 3


# -- request validation ---------------------------------------------------------------------------
def test_wrong_dtype_is_refused(url, good):
    with pytest.raises(InferenceServerException, match="'IMAGE' data-type is 'FP32', but model .* expects 'UINT8'"):
        raw_infer(url, np.frombuffer(good["RGB PNG"], np.uint8).astype(np.float32)[None], "FP32")


def test_wrong_rank_is_refused(url, good):
    with pytest.raises(InferenceServerException, match=r"unexpected shape for input 'IMAGE' .* Expected \[-1,-1\]"):
        raw_infer(url, np.frombuffer(good["RGB PNG"], np.uint8)[None, None])


def test_empty_tensor_is_refused(url):
    with pytest.raises(InferenceServerException, match=r"input 'IMAGE': empty tensor \(shape \[1, 0\]\)"):
        raw_infer(url, np.zeros((1, 0), np.uint8))


def test_zero_length_element_in_a_batch_is_refused_naming_it(url, good):
    data = good["baseline JPEG"]
    batch = np.zeros((3, len(data)), np.uint8)
    batch[0, : len(data)] = np.frombuffer(data, np.uint8)
    batch[2, : len(data)] = np.frombuffer(data, np.uint8)
    with pytest.raises(InferenceServerException, match="image 1: empty"):
        raw_infer(url, batch)


def test_batch_above_max_batch_size_is_refused(url, good):
    data = np.frombuffer(good["baseline JPEG"], np.uint8)
    with pytest.raises(InferenceServerException, match="batch-size must be <= 32"):
        raw_infer(url, np.tile(data, (33, 1)))


@pytest.mark.parametrize(
    ("value", "phrase"), [(0, "1..1000, got 0"), (5000, "got 5000"), ("x", "got 'x'"), (True, "boolean")]
)
def test_bad_top_k_is_refused(url, good, value, phrase):
    with pytest.raises(InferenceServerException, match="top_k") as info:
        raw_infer(url, np.frombuffer(good["RGB PNG"], np.uint8)[None], parameters={t.TOP_K: value})
    assert phrase in str(info.value)


# -- bad and good together ------------------------------------------------------------------------
def test_bad_and_good_images_sent_concurrently_each_get_their_own_answer(url, client, good, chelsea_rgb):
    baseline = {name: client.classify([data], top_k=3)[0] for name, data in good.items()}
    bad = {**{k: v[0] for k, v in refused_images(chelsea_rgb).items()}, **corrupt_images(chelsea_rgb)}
    jobs = [("good", n) for n in good] * 4 + [("bad", n) for n in bad] * 3
    random.Random(7).shuffle(jobs)
    barrier = threading.Barrier(8)

    def send(job):
        kind, name = job
        with VisionClient(url, "grpc") as own:
            try:
                barrier.wait(timeout=30)
            except threading.BrokenBarrierError:
                pass
            try:
                return job, own.classify([good[name] if kind == "good" else bad[name]], top_k=3)[0]
            except ClientError as exc:
                return job, exc

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, jobs))
    for (kind, name), answer in answers:
        if kind == "good":
            assert not isinstance(answer, Exception), (name, answer)
            assert answer.class_ids == baseline[name].class_ids, name
            np.testing.assert_allclose(answer.scores, baseline[name].scores, rtol=1e-4)
        else:
            assert isinstance(answer, ClientError), name
    # and the server still answers like before the storm
    assert client.classify([good["RGB PNG"]], top_k=3)[0].class_ids == baseline["RGB PNG"].class_ids


# -- bounded soak -----------------------------------------------------------------------------------
SOAK_REQUESTS = int(os.environ.get("TRITON_VISION_SOAK_REQUESTS", "2000"))
SOAK_TIME_LIMIT_S = 480.0  # a bound on the soak, not a speed: it stops there with what it has done
SOAK_WARMUP = 500  # allocator arenas and the DALI pipeline settle during the first few hundred
SOAK_ALLOWED_GROWTH_MB = 64.0  # tritonserver + all stubs, warm-up to end
SOAK_ALLOWED_LATE_GROWTH_MB = 24.0  # second half of the post-warm-up run: sustained growth


def classify_error(message: str) -> str:
    for phrase in (
        "is corrupt or truncated",
        "truncated",
        "corrupt",
        "is not supported",
        "above the limit",
        "not a JPEG or PNG",
        "declares",
        "empty",
    ):
        if phrase in message:
            return phrase
    return "other: " + message[:80]


def test_bounded_soak_keeps_memory_flat_and_answers_every_request(classification_server, url, good, chelsea_rgb):
    pid = classification_server.process.pid
    bad = [v[0] for v in refused_images(chelsea_rgb).values()] + list(corrupt_images(chelsea_rgb).values())
    goods = list(good.values())
    rng = random.Random(11)
    plan = [
        ("bad", rng.choice(bad)) if rng.random() < 0.1 else ("good", rng.choice(goods)) for _ in range(SOAK_REQUESTS)
    ]
    deadline = time.monotonic() + SOAK_TIME_LIMIT_S
    counts: Counter = Counter()
    samples: list[tuple[int, dict[str, float]]] = []
    lock = threading.Lock()
    done = {"n": 0}

    def worker(jobs):
        with VisionClient(url, "grpc") as own:
            for kind, data in jobs:
                if time.monotonic() > deadline:
                    return
                try:
                    own.classify([data], top_k=1)
                    outcome = "ok" if kind == "good" else "UNEXPECTED ok for a bad image"
                except ClientError as exc:
                    outcome = classify_error(str(exc)) if kind == "bad" else "UNEXPECTED error: " + str(exc)[:80]
                with lock:
                    counts[outcome] += 1
                    done["n"] += 1
                    if done["n"] == SOAK_WARMUP or done["n"] % 250 == 0:
                        samples.append((done["n"], memory(pid)))

    workers = 6
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(worker, [plan[i::workers] for i in range(workers)]))
    samples.append((done["n"], memory(pid)))
    start = next(m for n, m in samples if n >= SOAK_WARMUP)
    end = samples[-1][1]
    report = {
        "requests": done["n"],
        "planned": SOAK_REQUESTS,
        "outcomes": dict(counts),
        "memory_mb_after_warmup": {k: round(v, 1) for k, v in start.items()},
        "memory_mb_end": {k: round(v, 1) for k, v in end.items()},
        "samples": [(n, {k: round(v, 1) for k, v in m.items()}) for n, m in samples],
    }
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "soak-report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    # Enough requests after the warm-up to see growth (two samples past it); all of them on a normal day.
    assert done["n"] >= SOAK_WARMUP + 500 or done["n"] == SOAK_REQUESTS, f"only {done['n']} requests were done"
    assert not [k for k in counts if k.startswith(("UNEXPECTED", "other"))], counts
    after = [m for n, m in samples if n >= SOAK_WARMUP]
    middle = after[len(after) // 2]
    growth = sum(end.values()) - sum(start.values())
    late_growth = sum(end.values()) - sum(middle.values())
    assert growth < SOAK_ALLOWED_GROWTH_MB, f"memory grew {growth:.1f} MB after warm-up: {report['samples']}"
    assert late_growth < SOAK_ALLOWED_LATE_GROWTH_MB, f"memory still growing: {late_growth:.1f} MB: {report['samples']}"
    assert classification_server.is_ready()


# -- local server safety ----------------------------------------------------------------------------
def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on, read from /proc/net/tcp{,6}."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not Path(table).is_file():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address_hex, port_hex = local.split(":")
            raw = bytes.fromhex(address_hex)
            # /proc prints each 32-bit word of the address in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found


def test_server_listens_on_loopback_only_by_default(classification_server):
    options = classification_server.options
    listening = listening_addresses(classification_server.process.pid)
    assert {port for _, port in listening} >= {options.http_port, options.grpc_port, options.metrics_port}
    assert all(is_loopback(address) for address, _ in listening), listening
    command = " ".join(classification_server.command(Path("/backends")))
    assert "--http-restricted-api=model-repository,shared-memory,logging,trace:" in command  # serve's secret


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)  # gRPC listens on ::ffff:127.0.0.1 (tcp6)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def test_remote_model_unload_is_refused(classification_server):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://{classification_server.options.http_url}/v2/repository/models/{t.CLASSIFICATION}/unload",
        method="POST",
        data=b"{}",
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code >= 400
    assert classification_server.is_ready()


def test_serve_gives_up_naming_the_cause_when_tritonserver_keeps_dying(classification_repository):
    """serve restarts a dead tritonserver (tests/integration/test_healing.py); killed every time it
    starts, it gives up after 5 deaths within 300 s and exits 1 with the last cause."""
    import signal
    import subprocess
    import sys
    import time

    from triton_vision_serving.ports import free_port

    ports = [str(free_port()) for _ in range(3)]
    serve = subprocess.Popen(
        [sys.executable, "-m", "triton_vision_cli", "serve", "--model-repository"]
        + [str(classification_repository), "--http-port", ports[0], "--grpc-port", ports[1]]
        + ["--metrics-port", ports[2], "--probe-interval", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed: list[int] = []
    try:
        for line in serve.stdout:  # the first start must succeed: a death of a running server
            if line.startswith("Ctrl-C stops"):
                break
        deadline = time.monotonic() + 240.0
        while serve.poll() is None and time.monotonic() < deadline:
            for pid in [p for p in server_processes(serve.pid) if p != serve.pid and p not in killed]:
                try:
                    argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
                except OSError:  # gone already
                    continue
                if argv0.endswith(b"/bin/tritonserver"):  # not ldd, which serve runs on the stub first
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.2)
        stdout, stderr = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 1, stderr
    assert len(killed) == 5, (killed, stderr)
    assert "error: tritonserver died 5 times within 300 s: serve gives up. The last time: " in stderr
    assert "killed by SIGKILL" in stderr.splitlines()[-1]
    assert "stopping" not in stdout
