"""The wheel serves: built from the sources, installed with the server and client extras into a fresh
virtual environment, and run outside the checkout with nothing of it on any path: ``init`` writes the
built-in repository, ``models prepare`` a stand-in, ``serve`` serves it (the Python-based backends
found as package data), ``classify`` answers. ``export-repo`` reads the built-in repository there too.

The served repository is the one ``init`` wrote, less the other tasks' ensembles (deleted): serving
all three would load their DALI and ONNX models too, for nothing this test asks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from tests.conftest import ROOT
from tests.support.serve import serving
from tests.support.venvs import clean_environment, fresh_venv, run_installed
from triton_vision_models import tensors as t
from triton_vision_models.repository import ModelRepository

pytestmark = pytest.mark.integration

BUILD_TIMEOUT_S = 300
TOP_K = 3


def source_snapshot(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked and new, not ignored) copied to ``dest``: setuptools
    builds through ./build, whose leftovers from an earlier build would ship too and hide a broken
    package list."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    if listed.returncode != 0:
        pytest.skip(f"the wheel is built from git's file list, and git failed: {listed.stderr.decode()[-500:]}")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not listed again
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    sources = source_snapshot(work / "src")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), "."],
        cwd=sources,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        env=clean_environment(),
    )
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout[-2000:]}\n{built.stderr[-4000:]}"
    (found,) = (work / "dist").glob("triton_vision-*.whl")
    return found


@pytest.fixture(scope="module")
def wheel_venv(wheel, tmp_path_factory) -> Iterator[Path]:
    """The wheel with its server and client extras in a new environment (about 1.7 GB: removed after)."""
    home = fresh_venv(tmp_path_factory.mktemp("wheel_venv") / "venv", f"{wheel}[server,client]", skip_unreachable=True)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def outside(tmp_path) -> Path:
    """A working directory outside the checkout, with no model_repository."""
    folder = tmp_path / "user"
    folder.mkdir()
    assert ROOT not in folder.resolve().parents
    return folder


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def test_the_installed_package_data_is_the_wheels_not_the_checkouts(wheel_venv, outside):
    shown = subprocess.run(
        [
            str(wheel_venv / "bin" / "python"),
            "-c",
            "import triton_vision_backends as b, triton_vision_repository as r; print(b.__file__); print(r.__file__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environment(),
        cwd=outside,
    )
    for path in ok(shown).stdout.split():
        assert wheel_venv in Path(path).parents, path


def test_the_wheel_inits_prepares_serves_and_classifies_outside_the_checkout(wheel_venv, outside, chelsea_rgb):
    repository = outside / "R"
    inited = ok(run_installed(wheel_venv, "init", str(repository), cwd=outside))
    assert f"triton-vision serve --model-repository {repository}" in inited.stdout
    written = ModelRepository.load(repository)
    keep = written.closure([t.CLASSIFICATION])
    for model in set(written.models) - set(keep):
        shutil.rmtree(repository / model)

    prepare = ["models", "prepare", "--model-repository", str(repository), "--stand-in", "--model", t.CLASSIFIER]
    prepared = ok(run_installed(wheel_venv, *prepare, cwd=outside))
    assert "STAND-IN" in prepared.stderr

    photo = outside / "chelsea.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(chelsea_rgb, cv2.COLOR_RGB2BGR))
    program = [str(wheel_venv / "bin" / "triton-vision")]
    with serving(repository, "--probe-interval", "0", program=program, cwd=outside, env=clean_environment()) as serve:
        classify = ["classify", str(photo), "--top-k", str(TOP_K), "--url", serve.grpc_url]
        answered = ok(run_installed(wheel_venv, *classify, cwd=outside))
    lines = answered.stdout.splitlines()
    assert lines[0] == f"{photo}:" and len(lines) == 1 + TOP_K, answered.stdout
    assert "stand-in" in answered.stderr  # model_info reports the prepared file


def test_the_wheels_export_repo_reads_the_built_in_repository(wheel_venv, outside):
    exported = ok(run_installed(wheel_venv, "export-repo", "theirs", "--models", t.CLASSIFICATION, cwd=outside))
    assert f"{t.CLASSIFICATION} -> theirs/{t.CLASSIFICATION}" in exported.stdout.splitlines()
    assert sorted(p.name for p in outside.iterdir()) == ["theirs"]
    assert t.CLASSIFIER in ModelRepository.load(outside / "theirs").models


def test_the_wheels_commands_name_init_where_there_is_no_repository(wheel_venv, outside):
    refused = run_installed(wheel_venv, "serve", cwd=outside)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr == (
        "error: model repository model_repository does not exist: `triton-vision init model_repository` writes "
        "the built-in one (or pass --model-repository DIR)\n"
    )
