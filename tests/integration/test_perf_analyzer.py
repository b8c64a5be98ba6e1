"""perf_analyzer (from the tritonclient wheel) drives each ensemble with real JPEGs and PNGs.

Each run is bounded (``--request-count``). A run passes when perf_analyzer exits 0 (it exits
non-zero when any request fails) and Triton's own statistics API shows the requests reaching the
ensemble and its ONNX model: the ensemble's success count grew by perf_analyzer's reported request
count, its inference count by that times the batch size, and no step failed. The light stand-ins of
the test fixtures serve detection and segmentation (the known-answer detector and colour-rule FCN):
the DALI preprocessing and post-processing are the real ones.
"""

from __future__ import annotations

import re
import subprocess

import cv2
import pytest
import tritonclient.grpc as grpcclient

from tests.conftest import SHARED
from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration

SERVERS = {
    t.CLASSIFICATION: "classification_server",
    t.DETECTION: "bright_box_detection_server",
    t.SEGMENTATION: "segmentation_known_answer_server",
}
ONNX_MODEL = {t.CLASSIFICATION: t.CLASSIFIER, t.DETECTION: t.DETECTOR, t.SEGMENTATION: t.SEGMENTER}


def test_perf_analyzer_drives_the_classification_ensemble_with_a_jpeg(classification_server, chelsea_rgb, tmp_path):
    from triton_vision_server.perf import perf_analyzer_command, perf_analyzer_env
    from triton_vision_server.runtime import RuntimeMissingError

    image = tmp_path / "chelsea.jpg"
    cv2.imwrite(str(image), cv2.cvtColor(chelsea_rgb, cv2.COLOR_RGB2BGR))
    try:
        env = perf_analyzer_env()
        command = perf_analyzer_command(
            image,
            tmp_path / "data",
            model=t.CLASSIFICATION,
            url=classification_server.options.grpc_url,
            concurrency="2",
            request_count=6,  # bounded; measurement windows may never stabilise on a shared CPU
        )
    except RuntimeMissingError as exc:
        pytest.fail(f"perf_analyzer cannot run: {exc}")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "throughput" in result.stdout
    assert "Successful request count" in result.stdout


@pytest.fixture(scope="module")
def real_images(tmp_path_factory) -> list:
    """Real photos as JPEG and PNG files of several sizes (scikit-image's, plus ../shared's when present)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("perf_images")
    files = []
    for name, rgb, size, ext in [
        ("chelsea", data.chelsea(), None, ".jpg"),  # 451x300
        ("coffee", data.coffee(), (200, 133), ".png"),  # small PNG
        ("astronaut", data.astronaut(), None, ".png"),  # 512x512
        ("rocket", data.rocket(), (640, 960), ".jpg"),  # portrait, upscaled
    ]:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if size is not None:
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        path = folder / f"{name}{ext}"
        assert cv2.imwrite(str(path), bgr)
        files.append(path)
    files += sorted((SHARED / "images").glob("*.jpg"))[:2] if (SHARED / "images").is_dir() else []
    assert len({p.stat().st_size for p in files}) == len(files), "the files must differ in length"
    return files


def statistics(url: str, model: str) -> dict[str, int]:
    with grpcclient.InferenceServerClient(url) as client:
        (stats,) = client.get_inference_statistics(model_name=model).model_stats
    return {
        "success": stats.inference_stats.success.count,
        "fail": stats.inference_stats.fail.count,
        "inferences": stats.inference_count,
    }


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in after}


def reported_request_count(stdout: str) -> int:
    """The client side's "Request count: N" (perf_analyzer's own count of completed requests)."""
    found = re.search(r"Client:\s*\n\s*Request count: (\d+)", stdout)
    assert found, stdout[-2000:]
    return int(found.group(1))


CASES = [
    # ensemble, batch size, protocol, requests
    (t.CLASSIFICATION, 1, "grpc", 8),
    (t.CLASSIFICATION, 4, "http", 3),
    (t.DETECTION, 1, "grpc", 4),
    (t.DETECTION, 4, "grpc", 2),
    (t.SEGMENTATION, 1, "http", 4),
    (t.SEGMENTATION, 4, "grpc", 2),
]


@pytest.mark.parametrize(("ensemble", "batch_size", "protocol", "requests"), CASES, ids=lambda v: str(v))
def test_perf_analyzer_drives_the_ensemble_with_real_jpegs_and_pngs(
    request, real_images, tmp_path, ensemble, batch_size, protocol, requests
):
    from triton_vision_server.perf import perf_analyzer_data_command, perf_analyzer_env

    server = request.getfixturevalue(SERVERS[ensemble])
    url = server.options.grpc_url if protocol == "grpc" else server.options.http_url
    data_file = tmp_path / "input_data.json"
    command = perf_analyzer_data_command(
        real_images,
        data_file,
        model=ensemble,
        url=url,
        protocol=protocol,
        batch_size=batch_size,
        concurrency="2" if batch_size == 1 else "1",
        request_count=requests,
    )
    models = [ensemble, "image_guard", ONNX_MODEL[ensemble]]
    before = {m: statistics(server.options.grpc_url, m) for m in models}
    result = subprocess.run(command, env=perf_analyzer_env(), capture_output=True, text=True, timeout=300)
    after = {m: statistics(server.options.grpc_url, m) for m in models}
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    sent = reported_request_count(result.stdout)
    assert sent >= requests
    ensemble_delta = delta(after[ensemble], before[ensemble])
    assert ensemble_delta == {"success": sent, "fail": 0, "inferences": sent * batch_size}
    for step in models[1:]:
        step_delta = delta(after[step], before[step])
        assert step_delta["fail"] == 0, step
        assert step_delta["inferences"] == sent * batch_size, step
