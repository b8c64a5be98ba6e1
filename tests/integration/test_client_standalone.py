"""The client extra alone, in a fresh virtual environment: its commands work (classify through a
served ensemble, models list), the server commands name the missing extra. Which modules the client
imports is tests/unit/client/test_client_imports.py's job."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT
from tests.support.venvs import fresh_venv, run_installed


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    """A new virtual environment with `pip install .[client]` and nothing else."""
    home = fresh_venv(tmp_path_factory.mktemp("client_only") / "venv", f"{ROOT}[client]")
    python = home / "bin" / "python"
    for module in ("onnxruntime", "nvidia.dali", "pytriton"):  # else the tests below would prove nothing
        found = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, timeout=60)
        assert found.returncode != 0, f"{module} is importable in the client-only environment"
    return home


def run(venv_home: Path, *args: str) -> subprocess.CompletedProcess:
    return run_installed(venv_home, *args, cwd=venv_home)


def test_client_commands_work_and_server_commands_name_the_missing_extra(client_venv):
    help_run = run(client_venv, "classify", "--help")
    assert help_run.returncode == 0, help_run.stderr
    assert "--top-k" in help_run.stdout
    for command in (["serve"], ["models", "prepare"]):
        server = run(client_venv, *command)
        assert server.returncode == 2, server.stderr
        assert (
            f"'triton-vision {command[0]}' needs the server extra" in server.stderr and "onnxruntime" in server.stderr
        )
        assert "Traceback" not in server.stderr


def test_client_only_install_classifies_through_the_served_ensemble(client_venv, classification_server, tmp_path):
    image = tmp_path / "gradient.png"
    ramp = np.linspace(0, 255, 96, dtype=np.uint8)
    cv2.imwrite(str(image), np.dstack([np.tile(ramp, (64, 1))] * 3))
    result = run(client_venv, "classify", str(image), "--top-k", "2", "--url", classification_server.options.grpc_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{image}:"
    assert len(lines) == 3  # the path, then two labels with scores
    assert "stand-in" in result.stderr  # the served ResNet-18 is one, and the client asks model_info


def test_client_only_install_lists_the_servers_ensembles(client_venv, classification_server):
    listed = run(client_venv, "models", "list", "--url", classification_server.options.grpc_url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split() == ["classification", "classification", "32", "ready", "resnet18"]
