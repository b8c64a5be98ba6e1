"""The repository serve gives tritonserver: each ensemble fused where it can be (triton_vision_serving.fusion)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from triton_vision_models import repository as repo
from triton_vision_serving import fusion

BUILT_IN = Path(__file__).resolve().parents[3] / "model_repository"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    copy = tmp_path / "source"
    shutil.copytree(BUILT_IN, copy, ignore=shutil.ignore_patterns("*.onnx", "__pycache__"))
    return copy


def test_every_ensemble_is_fused_and_still_reads_as_the_ensemble_it_is(source, tmp_path):
    overlay = fusion.build_overlay(source, tmp_path / "served")
    original = repo.ModelRepository.load(source)
    served = repo.ModelRepository.load(overlay.path)
    assert sorted(overlay.fused) == original.ensembles  # the ones clients call; NAME_infer runs inside them
    assert overlay.kept == {}
    assert repo.load_config(overlay.path / "classification_infer").platform == "ensemble"
    assert served.ensembles == original.ensembles
    assert {n: served[n].task for n in served.ensembles} == {n: original[n].task for n in original.ensembles}
    assert sorted(served.models) == sorted(original.models)
    # the other models are the user's folders, linked
    assert (overlay.path / "resnet18").resolve() == (source / "resnet18").resolve()


def test_a_fused_config_has_the_ensembles_tensors_the_entrance_queue_and_the_busiest_steps_instances(source, tmp_path):
    overlay = fusion.build_overlay(source, tmp_path / "served")
    config = repo.load_config(overlay.path / "classification")
    ensemble = repo.load_config(source / "classification")
    guard = repo.load_config(source / "image_guard")
    assert config.backend == fusion.FUSED_BACKEND
    assert [t.name for t in config.input] == [t.name for t in ensemble.input]
    assert config.input[0].allow_ragged_batch  # as the guard takes it: requests of different lengths batch
    assert [t.name for t in config.output] == [t.name for t in ensemble.output]
    assert config.max_batch_size == ensemble.max_batch_size
    assert config.dynamic_batching == guard.dynamic_batching  # one queue, the entrance's bounds
    assert config.instance_group[0].count == 2  # resnet18 runs two instances
    assert config.parameters["ensemble_config"].string_value == repo.ENSEMBLE_CONFIG_FILE
    assert config.parameters["dali.num_threads"].string_value == "1"
    assert not config.response_cache.enable  # its post-processing reads request parameters
    assert (overlay.path / "classification" / "spec.toml").read_text() == (
        source / "classification" / "spec.toml"
    ).read_text()


def test_with_a_response_cache_the_cached_ensembles_stay_triton_ensembles(source, tmp_path):
    overlay = fusion.build_overlay(source, tmp_path / "served", cached=True)
    why = "'classification_infer' is cached (--cache-size): the cache keeps Triton's ensemble"
    assert overlay.kept["classification"] == why
    assert "classification_infer" not in overlay.fused
    assert repo.load_config(overlay.path / "classification").platform == "ensemble"
    assert repo.load_config(overlay.path / "classification_infer").response_cache.enable


def test_an_ensemble_with_a_python_model_of_its_own_runs_as_separate_steps(source, tmp_path):
    (source / "classification_postprocess" / "1" / "model.py").write_text("class TritonPythonModel:\n    pass\n")
    overlay = fusion.build_overlay(source, tmp_path / "served")
    assert overlay.kept["classification"] == "its step 'classification_postprocess' is a Python model of its own"
    assert "detection" in overlay.fused


def test_refresh_follows_a_changed_ensemble_and_a_new_model(source, tmp_path):
    overlay = fusion.build_overlay(source, tmp_path / "served")
    config = source / "classification" / "config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size: 32", "max_batch_size: 4"))
    fusion.refresh(overlay, "classification")
    assert repo.load_config(overlay.path / "classification").max_batch_size == 4
    assert repo.load_config(overlay.path / "classification", repo.ENSEMBLE_CONFIG_FILE).max_batch_size == 4
    assert "classification" in overlay.fused
    shutil.copytree(source / "resnet18", source / "resnet18_copy")
    fusion.refresh(overlay, "resnet18_copy")
    assert (overlay.path / "resnet18_copy").resolve() == (source / "resnet18_copy").resolve()


def test_the_fused_ensembles_that_run_a_model_are_named(source, tmp_path):
    overlay = fusion.build_overlay(source, tmp_path / "served")
    assert overlay.fused_using("resnet18") == ["classification"]
    assert sorted(overlay.fused_using("image_guard")) == sorted(
        n for n in overlay.fused if n.startswith(("classification", "detection", "segmentation"))
    )


def test_an_ensemble_with_a_step_on_a_gpu_runs_as_separate_steps(source, tmp_path):
    config = source / "resnet18" / "config.pbtxt"
    config.write_text(
        config.read_text().replace("instance_group [ { count: 2 } ]", "instance_group [ { kind: KIND_GPU } ]")
    )
    overlay = fusion.build_overlay(source, tmp_path / "served")
    assert overlay.kept["classification"] == "its step 'resnet18' runs on a GPU (a fused ensemble runs on the CPU)"


def test_a_machine_with_a_gpu_is_told_by_its_driver_device(tmp_path):
    assert not fusion.gpu_present(tmp_path / "nvidiactl")
    (tmp_path / "nvidiactl").touch()
    assert fusion.gpu_present(tmp_path / "nvidiactl")
