"""add-model (modelgen.addmodel) into a repository: what it writes, that it passes `triton-vision check`,
--force and name clashes, the shared models, batching as served, and that the kept NAME/spec.toml
regenerates the same files in place."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from tests.conftest import ROOT, SHARED, shared_path
from tests.support import format_models as fs
from tests.support.modelconfigs import load_config
from triton_vision_authoring.add_model.add_model import SPEC_FILENAME, add_model
from triton_vision_authoring.add_model.ensemble_spec import SpecError
from triton_vision_authoring.add_model.onnx_model import BATCH_ADDED, BATCH_FREE, BATCH_MADE_FREE, BATCH_ONE
from triton_vision_authoring.check import check_repository

BATCHING = {
    "yolo": (BATCH_FREE, 4),
    "tfod": (BATCH_MADE_FREE, 4),
    "tv": (BATCH_ADDED, 1),
    "segnhwc": (BATCH_FREE, 4),
    "segmap": (BATCH_FREE, 4),
}


def snapshot(repository: Path) -> dict[str, str]:
    """Every file of the repository by relative path: its sha256."""
    return {
        str(p.relative_to(repository)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(repository.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture
def repository(tmp_path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


@pytest.mark.parametrize("name", fs.FORMAT_SPECS)
def test_each_format_is_written_checked_and_batched_as_the_graph_allows(tmp_path, repository, name):
    result = add_model(fs.write_format_spec(tmp_path / "specs", name), repository)
    assert result.written == [name, f"{name}_infer", f"{name}_preprocess", f"{name}_model", f"{name}_postprocess"]
    assert result.shared == ["image_guard", "model_info"]
    assert (result.batching, result.max_batch_size) == BATCHING[name]
    report = check_repository(repository)
    assert report.ok, report.problems
    for model in result.written:
        assert load_config(repository / model).max_batch_size == result.max_batch_size
    served = onnx.load(str(repository / f"{name}_model" / "1" / "model.onnx"))
    assert served.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert (repository / name / SPEC_FILENAME).is_file()


def test_the_tfod_per_image_count_is_a_reshaped_scalar_the_check_accepts(tmp_path, repository):
    """num_detections is [batch] in the file: the config says dims [1] reshape [] and the check compares
    the file with the reshape (it refused the generated models before)."""
    add_model(fs.write_format_spec(tmp_path, "tfod"), repository)
    config = load_config(repository / "tfod_model")
    count = next(o for o in config.output if o.name == "num_detections")
    assert list(count.dims) == [1] and list(count.reshape.shape) == []


@pytest.mark.parametrize("name", fs.FORMAT_SPECS)
def test_the_kept_spec_regenerates_the_same_files_in_place(tmp_path, repository, name):
    add_model(fs.write_format_spec(tmp_path, name), repository)
    before = snapshot(repository)
    result = add_model(repository / name / SPEC_FILENAME, repository)
    assert snapshot(repository) == before
    assert (result.batching, result.max_batch_size) == BATCHING[name]


def mobilenet_v1_spec(directory: Path) -> Path:
    shared_path("models/mobilenet_v1_0.25_224.onnx")
    return fs.write_mobilenet_v1_spec(directory, SHARED)


def test_the_real_tflite_mobilenet_stays_one_image_per_request_when_regenerated(tmp_path, repository):
    result = add_model(mobilenet_v1_spec(tmp_path), repository)
    assert (result.batching, result.max_batch_size) == (BATCH_ONE, 1)
    before = snapshot(repository)
    again = add_model(repository / "mobilenet_v1" / SPEC_FILENAME, repository)
    assert (again.batching, again.max_batch_size) == (BATCH_ONE, 1)
    assert snapshot(repository) == before


def test_a_name_clash_is_refused_without_force(tmp_path, repository):
    spec = fs.write_format_spec(tmp_path, "yolo")
    add_model(spec, repository)
    with pytest.raises(SpecError) as refused:
        add_model(spec, repository)
    assert str(refused.value) == (
        f"{repository} already has yolo, yolo_infer, yolo_preprocess, yolo_model, yolo_postprocess "
        "(choose another name in yolo.toml, or --force to replace)"
    )


def test_a_clash_with_one_foreign_model_is_refused(tmp_path, repository):
    (repository / "yolo_model").mkdir()
    with pytest.raises(SpecError, match=r"already has yolo_model \(choose another name in yolo.toml"):
        add_model(fs.write_format_spec(tmp_path, "yolo"), repository)
    assert sorted(p.name for p in repository.iterdir()) == ["yolo_model"], "nothing else was written"


def test_force_replaces_the_models_and_leaves_nothing_stale(tmp_path, repository):
    spec = fs.write_format_spec(tmp_path, "yolo")
    add_model(spec, repository)
    stale = repository / "yolo_postprocess" / "1" / "stale.py"
    stale.write_text("")
    add_model(fs.write_format_spec(tmp_path, "yolo", max_batch_size=2), repository, force=True)
    assert not stale.exists()
    assert load_config(repository / "yolo").max_batch_size == 2


def test_shared_models_are_written_only_where_missing(tmp_path, repository):
    add_model(fs.write_format_spec(tmp_path, "yolo"), repository)
    guard = repository / "image_guard" / "config.pbtxt"
    guard.write_text(guard.read_text() + "# the operator's own line\n")
    result = add_model(fs.write_format_spec(tmp_path, "segmap"), repository)
    assert result.shared == []
    assert guard.read_text().endswith("# the operator's own line\n")


def test_a_repository_that_is_not_a_directory(tmp_path):
    with pytest.raises(SpecError, match="is not a directory"):
        add_model(fs.write_format_spec(tmp_path, "yolo"), tmp_path / "absent")


def test_generated_models_that_fail_the_check_are_not_left_in_the_repository(tmp_path, repository, monkeypatch):
    from triton_vision_authoring import check as repocheck

    original = repocheck.check_repository

    def failing(path, models=None):
        report = original(path, models)
        report.problems.append(repocheck.Finding("yolo_model", "a problem the test injects"))
        return report

    monkeypatch.setattr(repocheck, "check_repository", failing)
    with pytest.raises(SpecError, match="do not pass `triton-vision check`: yolo_model: a problem the test injects"):
        add_model(fs.write_format_spec(tmp_path, "yolo"), repository)
    assert list(repository.iterdir()) == []


def test_the_command_prints_what_it_wrote_and_refuses_in_one_line(tmp_path, repository):
    command = [sys.executable, "-m", "triton_vision_cli", "add-model"]
    spec = fs.write_format_spec(tmp_path, "tv")
    done = subprocess.run(
        [*command, str(spec), "--model-repository", str(repository)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert f"tv: detection ensemble written to {repository}/" in done.stdout
    assert "model: no batch dimension (one was added): max_batch_size 1; 1 image per request" in done.stdout
    again = subprocess.run(
        [*command, str(spec), "--model-repository", str(repository)], capture_output=True, text=True, cwd=ROOT
    )
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    assert again.stderr.startswith(f"error: {repository} already has tv, ")


@pytest.mark.parametrize("name", ["tv", "segmap"])
def test_the_image_part_is_a_cached_ensemble_and_cache_false_keeps_four_steps_in_one(tmp_path, repository, name):
    result = add_model(fs.write_format_spec(tmp_path / "specs", name), repository)
    outer = load_config(repository / name)
    inner = load_config(repository / f"{name}_infer")
    assert [s.model_name for s in outer.ensemble_scheduling.step] == [f"{name}_infer", f"{name}_postprocess"]
    inner_steps = [s.model_name for s in inner.ensemble_scheduling.step]
    assert inner_steps == ["image_guard", f"{name}_preprocess", f"{name}_model"]
    # Triton's cache keys entries on input bytes, not request parameters: the ensemble whose
    # post-processing reads them is never cached, the image's part always is.
    assert inner.response_cache.enable and not outer.response_cache.enable
    assert not load_config(repository / f"{name}_postprocess").response_cache.enable
    flat = tmp_path / "flat"
    flat.mkdir()
    result = add_model(fs.write_format_spec(tmp_path / "flat-specs", name, cache=False), flat)
    assert result.written == [name, f"{name}_preprocess", f"{name}_model", f"{name}_postprocess"]
    steps = [s.model_name for s in load_config(flat / name).ensemble_scheduling.step]
    assert steps == ["image_guard", f"{name}_preprocess", f"{name}_model", f"{name}_postprocess"]
    assert not load_config(flat / name).response_cache.enable
    assert check_repository(flat).ok and check_repository(repository).ok


def test_the_source_files_own_sha256_is_printed_and_its_rewritten_copy_named(tmp_path, repository, capsys):
    from triton_vision_cli import main as cli
    from triton_vision_models.provenance import ModelSource

    spec = fs.write_format_spec(tmp_path, "tv")  # no batch dimension: served with one added, a rewritten copy
    source, served = tmp_path / "tv.onnx", repository / "tv_model" / "1" / "model.onnx"
    assert cli.main(["add-model", str(spec), "--model-repository", str(repository)]) == 0
    own, copy = (hashlib.sha256(path.read_bytes()).hexdigest() for path in (source, served))
    assert own != copy
    assert (
        f"  tv_model/1/model.onnx: from {source.resolve()} (sha256 {own[:12]}...; served as a rewritten copy, "
        f"sha256 {copy[:12]}...)"
    ) in capsys.readouterr().out.splitlines()
    recorded = ModelSource.read(served.parent)
    assert recorded is not None and (recorded.sha256, recorded.arrived_sha256) == (copy, own)
