"""perf_analyzer (from the tritonclient wheel) drives the classification ensemble with a JPEG."""

from __future__ import annotations

import subprocess

import cv2
import pytest

from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration


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
            measurement_ms=1500,
        )
    except RuntimeMissingError as exc:
        pytest.fail(f"perf_analyzer cannot run: {exc}")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "throughput" in result.stdout
    assert "Successful request count" in result.stdout
