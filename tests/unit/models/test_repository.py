"""The one reader of a model repository: what it says about the project's repository and broken ones."""

from __future__ import annotations

import pytest

import triton_vision_contract as contract
from tests.conftest import MODEL_REPOSITORY, copy_model_dirs
from triton_vision_models import tensors as t
from triton_vision_models.errors import ConfigError
from triton_vision_models.repository import ModelRepository


def test_the_projects_repository_has_three_ensembles_each_of_its_own_task():
    repository = ModelRepository.load(MODEL_REPOSITORY)
    assert repository.ensembles == [t.CLASSIFICATION, t.DETECTION, t.SEGMENTATION]
    assert {name: repository[name].task for name in repository.ensembles} == {
        t.CLASSIFICATION: contract.CLASSIFICATION,
        t.DETECTION: contract.DETECTION,
        t.SEGMENTATION: contract.SEGMENTATION,
    }
    assert repository[t.CLASSIFIER].task is None  # not an ensemble
    assert repository.unreadable == {}


def test_steps_are_the_ensembles_models_in_step_order():
    repository = ModelRepository.load(MODEL_REPOSITORY)
    assert repository.steps(t.CLASSIFICATION) == [t.CLASSIFICATION_INFER, t.CLASSIFICATION_POSTPROCESS]
    assert repository.steps(t.CLASSIFICATION_INFER) == [t.IMAGE_GUARD, t.CLASSIFICATION_PREPROCESS, t.CLASSIFIER]
    assert repository.composing_models(t.CLASSIFICATION) == [
        t.IMAGE_GUARD,
        t.CLASSIFICATION_PREPROCESS,
        t.CLASSIFIER,
        t.CLASSIFICATION_POSTPROCESS,
    ]
    assert repository.composing_models(t.CLASSIFICATION, nested=True)[0] == t.CLASSIFICATION_INFER
    assert repository.steps(t.CLASSIFIER) == []
    assert repository.steps("no_such_model") == []
    assert repository.ensembles_using(t.IMAGE_GUARD) == [t.CLASSIFICATION, t.DETECTION, t.SEGMENTATION]
    assert repository.ensembles_using(t.DETECTOR) == [t.DETECTION]


def test_a_nested_ensemble_is_expanded_into_the_models_it_runs(tmp_path):
    project = ModelRepository.load(MODEL_REPOSITORY)
    models = [t.CLASSIFICATION, *project.composing_models(t.CLASSIFICATION, nested=True)]
    root = copy_model_dirs(tmp_path / "repo", models)
    outer = root / "outer"
    (outer / "1").mkdir(parents=True)
    (outer / "config.pbtxt").write_text(
        'name: "outer" platform: "ensemble" max_batch_size: 32\n'
        'input [ { name: "IMAGE" data_type: TYPE_UINT8 dims: [ -1 ] } ]\n'
        'output [ { name: "SCORES" data_type: TYPE_FP32 dims: [ -1 ] } ]\n'
        'ensemble_scheduling { step [ { model_name: "classification" model_version: -1\n'
        '  input_map { key: "IMAGE" value: "IMAGE" } output_map { key: "SCORES" value: "SCORES" } } ] }\n'
    )
    repository = ModelRepository.load(root)
    assert repository.steps("outer") == [t.CLASSIFICATION]
    assert repository.composing_models("outer") == repository.composing_models(t.CLASSIFICATION)
    assert repository["outer"].task is None  # SCORES alone is no task's wire contract
    assert repository.ensembles == ["outer"]  # the ensembles clients call: no other ensemble's step
    assert repository.nested_ensembles == [t.CLASSIFICATION, t.CLASSIFICATION_INFER]


def test_a_broken_config_is_set_aside_with_its_reason_and_the_others_are_read(tmp_path):
    root = copy_model_dirs(tmp_path / "repo", [t.IMAGE_GUARD, t.MODEL_INFO])
    (root / "broken").mkdir()
    (root / "broken" / "config.pbtxt").write_text("name: 'broken' max_batch_size: many\n")
    (root / "empty").mkdir()
    (root / ".hidden").mkdir()
    repository = ModelRepository.load(root)
    assert sorted(repository.models) == [t.IMAGE_GUARD, t.MODEL_INFO]
    assert sorted(repository.unreadable) == ["broken", "empty"]
    assert repository.unreadable["empty"] == "no config.pbtxt"
    assert repository.unreadable["broken"].startswith("config.pbtxt does not parse: ")
    with pytest.raises(
        ConfigError, match=r"model 'broken' is not in the repository .* \(models: image_guard, model_info\)"
    ):
        repository["broken"]


def test_closure_brings_steps_label_owners_and_model_info():
    repository = ModelRepository.load(MODEL_REPOSITORY)
    assert repository.closure([t.CLASSIFICATION]) == [
        t.CLASSIFICATION,
        t.CLASSIFICATION_INFER,
        t.CLASSIFICATION_POSTPROCESS,
        t.MODEL_INFO,
        t.IMAGE_GUARD,
        t.CLASSIFICATION_PREPROCESS,
        t.CLASSIFIER,
    ]
    # classification_postprocess reads resnet18/imagenet_labels.txt: the classifier's directory comes too.
    assert repository.closure([t.CLASSIFICATION_POSTPROCESS]) == [t.CLASSIFICATION_POSTPROCESS, t.CLASSIFIER]


def test_model_files_are_the_backends_files_present_in_version_folders(tmp_path):
    root = copy_model_dirs(tmp_path / "repo", [t.CLASSIFIER, t.CLASSIFICATION_PREPROCESS, t.IMAGE_GUARD])
    repository = ModelRepository.load(root)
    assert repository[t.CLASSIFIER].model_files() == []  # never committed
    (root / t.CLASSIFIER / "1" / "model.onnx").write_bytes(b"x")
    assert repository[t.CLASSIFIER].model_files() == [root / t.CLASSIFIER / "1" / "model.onnx"]
    assert repository[t.CLASSIFICATION_PREPROCESS].model_files() == [
        root / t.CLASSIFICATION_PREPROCESS / "1" / "dali.py"
    ]
    assert repository[t.IMAGE_GUARD].model_files() == [root / t.IMAGE_GUARD / "1" / "model.py"]


def test_a_missing_repository_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory"):
        ModelRepository.load(tmp_path / "nowhere")
