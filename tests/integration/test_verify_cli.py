"""``triton-vision add-model SPEC --verify DIR`` end to end, as a user runs it (no server needed): the
real CLI in a child process, the real MobileNet v1 of ../shared, real photos; what it prints, its exit
status, and what it writes (nothing when it warns or with --verify-only). User errors: one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.verify import V1_PREPROCESS, v1_spec, write_photos
from triton_vision_cli.main import main

TIMEOUT_S = 300
WRONG_SCALING = V1_PREPROCESS.replace("mean = [0.5, 0.5, 0.5]", "mean = [0, 0, 0]").replace(
    "std = [0.5, 0.5, 0.5]", "std = [1, 1, 1]"
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return write_photos(tmp_path_factory.mktemp("verify_cli_photos"))


def add_model(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "triton_vision_cli", "add-model", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


@pytest.mark.parametrize("only", [True, False])
def test_a_wrong_spec_is_reported_exits_1_and_nothing_is_written(only, photos, tmp_path):
    spec = v1_spec(tmp_path, "mnv1", WRONG_SCALING)
    repository = tmp_path / "repo"
    repository.mkdir()
    flags = ["--verify-only"] if only else []
    done = add_model(spec, "--verify", photos, *flags, "--model-repository", repository)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    table = done.stdout.splitlines()
    assert table[0].startswith(f"verify mnv1: 48 photos of 5 classes from {photos}")
    own = next(line for line in table if line.startswith("*"))
    assert own.split()[1:4] == ["RGB", "0..1", "stretch"]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1
    assert "RGB, -1..1, stretch 224x224 gets" in warnings[0]
    assert warnings[0].split("for it write: ")[1].startswith("mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5]")
    assert "verify: 48/48 photos, 10 variants each" in done.stderr  # progress, on stderr
    assert ("not written: fix [preprocess] in mnv1.toml" in done.stderr) is not only
    assert list(repository.iterdir()) == []


def test_a_spec_that_passes_is_written(photos, tmp_path):
    spec = v1_spec(tmp_path, "mnv1")
    repository = tmp_path / "repo"
    repository.mkdir()
    done = add_model(spec, "--verify", photos, "--verify-limit", "2", "--model-repository", repository)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("verify mnv1: 10 photos of 5 classes")
    assert lines[1] == "  espresso 2, kuvasz 2, moped 2, tabby 2, tripod 2"
    assert "  38 more photos not used (--verify-limit 2)" in lines
    assert "ok: no alternative is clearly better than the spec's preprocessing" in lines
    assert f"mnv1: classification ensemble written to {repository}/" in lines
    assert {"mnv1", "mnv1_preprocess", "mnv1_model", "mnv1_postprocess"} <= {p.name for p in repository.iterdir()}


def _errors(capsys, *argv: str | Path) -> tuple[int, str]:
    try:
        status = main(["add-model", *map(str, argv)])
    except SystemExit as exc:  # argparse's usage errors
        status = int(exc.code or 0)
    err = capsys.readouterr().err.strip().splitlines()
    return status, err[-1]


def test_user_errors_are_one_line_and_exit_2(capsys, tmp_path, photos):
    spec = v1_spec(tmp_path, "mnv1")
    status, line = _errors(capsys, spec, "--verify", tmp_path / "nowhere", "--verify-only")
    assert (status, line) == (
        2,
        f"error: --verify {tmp_path / 'nowhere'}: no such directory (it holds one folder of photos per class)",
    )
    (tmp_path / "odd" / "unicorns").mkdir(parents=True)
    status, line = _errors(capsys, spec, "--verify", tmp_path / "odd", "--verify-only")
    assert status == 2 and line.startswith(
        "error: --verify " + str(tmp_path / "odd") + ": no folder names a label of imagenet_1001_with_background.txt "
        "(folders: unicorns; labels look like 'background', 'tench, Tinca tinca')"
    )
    status, line = _errors(capsys, spec, "--verify-only")
    assert (status, line) == (2, "error: --verify-only needs --verify DIR")
    status, line = _errors(capsys, spec, "--verify", photos, "--verify-limit", "0")
    assert (status, line) == (2, "error: --verify-limit must be at least 1, got 0")
    detector = tmp_path / "detector.toml"
    detector.write_text(
        'name = "d"\ntask = "detection"\nmodel = "d.onnx"\nlabels = "d.txt"\n[preprocess]\nresize = "keep-aspect"\n'
        'min_size = 800\nmax_size = 1333\n[postprocess]\nformat = "torchvision"\n'
    )
    status, line = _errors(capsys, detector, "--verify", photos)
    assert status == 2 and line.startswith("error: detector.toml: --verify checks classifiers")
