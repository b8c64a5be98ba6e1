"""Triton Model Analyzer runs a tiny, bounded search on the classification ensemble.

Model Analyzer lives in its own environment (``make model-analyzer-env`` makes ``.venv-ma/``;
``TRITON_VISION_MODEL_ANALYZER`` may name another ``model-analyzer`` executable); without it this
test skips and says how to get it. It runs in remote mode against the real local server started
with model control, loads every configuration it tries through that API, and must end with
measurements: a results CSV whose rows name the ensemble, a throughput above zero and the
configurations it tried. Triton's statistics must show its requests reaching the ensemble.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

from tests.conftest import ROOT, ensemble_repository
from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration

TIMEOUT_S = 900


def model_analyzer_executable() -> Path:
    configured = os.environ.get("TRITON_VISION_MODEL_ANALYZER")
    path = Path(configured) if configured else ROOT / ".venv-ma" / "bin" / "model-analyzer"
    if not path.is_file():
        pytest.skip(f"Model Analyzer is not installed at {path}: run `make model-analyzer-env`")
    return path


@pytest.fixture(scope="module")
def controllable_server(tmp_path_factory):
    """The classification ensemble (ResNet-18 stand-in) served with model control on."""
    from triton_vision_authoring import models as model_files
    from triton_vision_serving.runtime import LocalTritonServer
    from triton_vision_serving.server_config import ServerOptions

    repository = ensemble_repository(tmp_path_factory.mktemp("model_analyzer_repo"), t.CLASSIFICATION)
    model_files.prepare(repository, model_files.CATALOGUE[t.CLASSIFIER], stand_in=True)
    options = ServerOptions.on_free_ports(repository, allow_model_control=True)
    with LocalTritonServer(options) as server:
        yield server


def test_model_analyzer_profiles_the_classification_ensemble(controllable_server, chelsea_rgb, tmp_path):
    import cv2

    executable = model_analyzer_executable()
    images = []
    for name, size in (("small.png", (160, 107)), ("large.jpg", (902, 600))):
        path = tmp_path / name
        cv2.imwrite(str(path), cv2.resize(cv2.cvtColor(chelsea_rgb, cv2.COLOR_RGB2BGR), size))
        images.append(path)
    options = controllable_server.options
    workdir = tmp_path / "ma"
    command = [
        sys.executable,
        "-m",
        "triton_vision_cli",
        "model-analyzer",  # the README's command
        t.CLASSIFICATION,
        *map(str, images),
        f"--model-repository={options.model_repository}",
        f"--workdir={workdir}",
        f"--grpc-port={options.grpc_port}",
        f"--http-port={options.http_port}",
        f"--metrics-port={options.metrics_port}",
        "--max-model-batch-size=1",  # a tiny search: one candidate besides the default,
        "--max-instance-count=1",
        "--concurrency=2",  # measured at one concurrency
        f"--model-analyzer={executable}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path)
    log = result.stdout + result.stderr
    (tmp_path / "model_analyzer.log").write_text(log)
    assert result.returncode == 0, log[-4000:]
    assert "Profile complete" in log, log[-4000:]
    with (workdir / "results" / "results" / "metrics-model-inference.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and {row["Model"] for row in rows} == {t.CLASSIFICATION}
    assert all(float(row["Throughput (infer/sec)"]) > 0 for row in rows)
    assert all(row["Model Config Path"].startswith(f"{t.CLASSIFICATION}_config_") for row in rows)
    with grpcclient.InferenceServerClient(options.grpc_url) as client:
        (stats,) = client.get_inference_statistics(model_name=t.CLASSIFICATION).model_stats
    assert stats.inference_stats.success.count > 0
    assert stats.inference_stats.fail.count == 0
