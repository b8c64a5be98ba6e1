"""`triton-vision probe` without a server: its embedded image and its exit codes."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np

from tests.conftest import ROOT
from triton_vision_client.probe import PROBE_PNG
from triton_vision_models.imageguard import ImageLimits, check_image


def test_embedded_image_is_a_small_png_the_guard_accepts_and_opencv_decodes():
    header = check_image(PROBE_PNG, ImageLimits())
    assert (header.format, header.width, header.height) == ("PNG", 32, 32)
    decoded = cv2.imdecode(np.frombuffer(PROBE_PNG, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (32, 32, 3) and decoded.std() > 10  # not a flat image


def run_probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "triton_vision_cli", "probe", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_probe_of_a_server_that_is_not_there_exits_1_saying_so():
    from triton_vision_serving.runtime import free_port

    result = run_probe("--url", f"127.0.0.1:{free_port()}", "--timeout", "3")
    assert result.returncode == 1
    assert "UNHEALTHY: cannot reach a triton-vision server at 127.0.0.1:" in result.stderr
    assert "Is one running?" in result.stderr
    assert "Traceback" not in result.stderr


def test_probe_json_output_is_machine_readable_when_unhealthy():
    import json

    from triton_vision_serving.runtime import free_port

    result = run_probe("--url", f"127.0.0.1:{free_port()}", "--protocol", "http", "--timeout", "3", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["ok"] is False


def test_probe_takes_any_ensemble_name_and_refuses_a_malformed_url_with_exit_2():
    from triton_vision_cli.main import build_parser

    args = build_parser("probe").parse_args(["probe", "--ensemble", "pets", "--ensemble", "tv_detection"])
    assert args.ensemble == ["pets", "tv_detection"]
    result = run_probe("--ensemble", "pets", "--url", "http://127.0.0.1:8001")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: http://127.0.0.1:8001: give HOST:PORT without a scheme (--url 127.0.0.1:8001 --protocol http)"
    )
