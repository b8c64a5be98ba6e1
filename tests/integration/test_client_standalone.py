"""The client extra alone, in a fresh virtual environment: its commands work (classify through a
served ensemble, ensembles), the other commands name the extra they need. Which modules the client
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


def test_client_commands_work_and_the_others_name_the_missing_extra(client_venv):
    listing = run(client_venv, "--help")
    assert listing.returncode == 0, listing.stderr
    assert "serve" in listing.stdout and "[server]" in listing.stdout
    help_run = run(client_venv, "classify", "--help")
    assert help_run.returncode == 0, help_run.stderr
    assert "--top-k" in help_run.stdout
    written = run(client_venv, "init", "R")  # init only writes files: the client extra is enough
    assert written.returncode == 0, written.stderr
    assert "triton-vision models prepare --model-repository R" in written.stdout
    for command, extra, package in (
        (["serve"], "server", "onnxruntime"),
        (["models", "prepare"], "server", "onnxruntime"),
        (["ui"], "ui", "starlette"),
        (["bench"], "bench", "matplotlib"),
    ):
        refused = run(client_venv, *command)
        assert refused.returncode == 2, refused.stderr
        (line,) = refused.stderr.splitlines()  # one line, no traceback
        assert line.startswith(f"error: 'triton-vision {command[0]}' needs the {extra} extra (missing: "), line
        assert line.endswith(f"): pip install 'triton-vision[{extra}]'") and package in line, line


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
    listed = run(client_venv, "ensembles", "--url", classification_server.options.grpc_url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split() == ["classification", "classification", "32", "ready", "resnet18"]
