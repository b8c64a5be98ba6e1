"""``add-model`` of a pipeline spec over the built-in detection and classification ensembles (their
configs and kept specs; no ONNX file is needed to write and check a pipeline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import MODEL_REPOSITORY, copy_model_dirs
from tests.support.modelconfigs import load_config
from triton_vision_authoring.add_model.ensemble_spec import SpecError
from triton_vision_authoring.add_model.keys import reference_table
from triton_vision_authoring.add_model.pipeline import add_pipeline
from triton_vision_authoring.add_model.pipeline_spec import PIPELINE_KEYS, parse_pipeline_spec
from triton_vision_authoring.check import check_repository
from triton_vision_authoring.export_repo import export_repository
from triton_vision_cli.main import main
from triton_vision_models.repository import model_dirs

SPEC = """
name = "scene"
task = "pipeline"

[detect]
ensemble = "detection"
classes = ["dog", "cat"]
score_threshold = 0.3
max_objects = 4

[then]
ensemble = "classification"
margin = 0.1
"""


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    return copy_model_dirs(tmp_path / "repo", [d.name for d in model_dirs(MODEL_REPOSITORY)])


def write(tmp_path: Path, text: str = SPEC) -> Path:
    path = tmp_path / "scene.toml"
    path.write_text(text)
    return path


def add(tmp_path: Path, repository: Path, text: str = SPEC, **options):
    path = write(tmp_path, text)
    return add_pipeline(path, path.read_text(), repository, **options)


def test_a_pipeline_is_an_ensemble_of_the_detectors_image_part_and_its_objects_step(tmp_path, repository):
    result = add(tmp_path, repository)
    assert result.written == ["scene", "scene_objects"]
    ensemble = load_config(repository / "scene")
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == ["detection_infer", "scene_objects"]
    assert [o.name for o in ensemble.output][-3:] == ["OBJECT_CLASS_IDS", "OBJECT_SCORES", "OBJECT_LABELS"]
    objects = load_config(repository / "scene_objects")
    settings = {key: value.string_value for key, value in objects.parameters.items()}
    assert settings["detector_postprocess"] == "detection_postprocess"
    assert settings["stage_model"] == "resnet18"
    assert settings["stage_input"] == "data"
    assert settings["stage_output"] == "resnetv15_dense0_fwd"
    assert settings["stage_postprocess"] == "classification_postprocess"
    assert settings["stage_classes"] == "1000"
    # the model zoo's COCO file: line = id, with 'cat' on line 17 and 'dog' on line 18
    labels = (MODEL_REPOSITORY / "faster_rcnn" / "coco_classes.txt").read_text().splitlines()
    assert json.loads(settings["classes"]) == sorted([labels.index("cat"), labels.index("dog")])
    assert json.loads(settings["stage_preprocess"])["rule"]["shorter"] == 256
    assert (settings["default_score_threshold"], settings["default_max_objects"], settings["margin"]) == (
        "0.3",
        "4",
        "0.1",
    )
    assert (repository / "scene" / "spec.toml").read_text().endswith(SPEC)
    assert check_repository(repository).ok


def test_check_follows_the_models_the_objects_step_calls(tmp_path, repository):
    add(tmp_path, repository)
    config = repository / "scene_objects" / "config.pbtxt"
    config.write_text(config.read_text().replace('string_value: "data"', 'string_value: "pixels"'))
    problems = [str(p) for p in check_repository(repository, ["scene_objects"]).problems]
    assert problems == ["scene_objects: parameter stage_input 'pixels' is not a tensor of 'resnet18' (data)"]
    config.write_text(config.read_text().replace('"classification_postprocess"', '"gone"'))
    problems = [str(p) for p in check_repository(repository, ["scene_objects"]).problems]
    assert "lacks: stage_postprocess 'gone'" in problems[0]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('ensemble = "detection"', 'ensemble = "detectoin"', r"'detectoin' is not in .*did you mean 'detection'\?"),
        (
            'ensemble = "detection"',
            'ensemble = "segmentation"',
            r"\[detect\] ensemble 'segmentation' answers segmentation",
        ),
        ('ensemble = "classification"', 'ensemble = "detection"', r"\[then\] ensemble 'detection' answers detection"),
        ('ensemble = "classification"', 'ensemble = "resnet18"', r"'resnet18' is a onnxruntime model, not an ensemble"),
        ('["dog", "cat"]', '["dog", "kat"]', r"classes: 'kat' is not a label of 'detection'; did you mean 'cat'\?"),
        ("margin = 0.1", "margin = 2", r"\[then\] 'margin' must be a number in \[0, 1\], got 2"),
        ("max_objects = 4", "max_object = 4", r"unknown key \[detect\] 'max_object'; did you mean 'max_objects'\?"),
        ("[then]", "[than]", r"unknown key 'than'"),
    ],
)
def test_specs_that_cannot_be_a_pipeline_are_refused_naming_why(tmp_path, repository, old, new, message):
    with pytest.raises(SpecError, match=message):
        add(tmp_path, repository, SPEC.replace(old, new))
    assert not (repository / "scene").exists()


def test_a_second_stage_without_its_kept_spec_is_refused(tmp_path, repository):
    (repository / "classification" / "spec.toml").unlink()
    with pytest.raises(SpecError, match="has no spec.toml .* its preprocessing rule, which every crop follows"):
        add(tmp_path, repository)


def test_an_existing_pipeline_is_replaced_only_with_force(tmp_path, repository):
    add(tmp_path, repository)
    with pytest.raises(SpecError, match="already has scene, scene_objects"):
        add(tmp_path, repository)
    add(tmp_path, repository, force=True)


def test_the_command_writes_a_pipeline_and_names_its_client(tmp_path, repository, capsys):
    path = write(tmp_path)
    assert main(["add-model", str(path), "--model-repository", str(repository)]) == 0
    out = capsys.readouterr().out
    assert "scene: pipeline written to" in out and "(detection, then classification)" in out
    assert "clients: triton-vision pipeline IMAGE --ensemble scene" in out
    assert main(["add-model", str(path), "--model-repository", str(repository), "--verify", str(tmp_path)]) == 2


def test_export_renames_the_models_it_calls_and_its_kept_spec(tmp_path, repository):
    add(tmp_path, repository)
    dest = tmp_path / "theirs"
    export_repository(repository, dest, prefix="tv_", models=["scene"])
    objects = load_config(dest / "tv_scene_objects")
    settings = {key: value.string_value for key, value in objects.parameters.items()}
    assert (settings["stage_model"], settings["detector_postprocess"]) == ("tv_resnet18", "tv_detection_postprocess")
    spec = (dest / "tv_scene" / "spec.toml").read_text()
    assert 'ensemble = "tv_detection"' in spec and 'ensemble = "tv_classification"' in spec
    assert "shared_prefix" not in spec
    parse_pipeline_spec(spec, dest / "tv_scene" / "spec.toml")  # still a valid pipeline spec
    assert check_repository(dest).ok
    # regenerating from the exported copy writes the exported names
    kept = dest / "tv_scene" / "spec.toml"
    add_pipeline(kept, kept.read_text(), dest)
    assert check_repository(dest).ok


def test_the_docs_spec_table_is_the_specs_own_reference():
    page = (MODEL_REPOSITORY.parent / "docs" / "pipelines.md").read_text()
    table = page.split("<!-- spec-keys -->\n", 1)[1].split("\n<!-- /spec-keys -->", 1)[0]
    assert table == reference_table(PIPELINE_KEYS)


def test_an_embedding_ensemble_can_be_the_second_stage(tmp_path, repository):
    from tests.support.embedders import TOKEN_DIM, write_embedders
    from triton_vision_authoring.add_model.add_model import add_model

    (spec,) = write_embedders(tmp_path, resnet=False)
    add_model(spec, repository)
    add(tmp_path, repository, SPEC.replace('ensemble = "classification"', 'ensemble = "token_embed"'))
    ensemble = load_config(repository / "scene")
    (objects,) = [o for o in ensemble.output if o.name.startswith("OBJECT_")]
    assert (objects.name, list(objects.dims)) == ("OBJECT_EMBEDDINGS", [-1, TOKEN_DIM])
    settings = {k: v.string_value for k, v in load_config(repository / "scene_objects").parameters.items()}
    assert (settings["stage_task"], settings["stage_model"]) == ("embedding", "token_embed_model")
    assert "top_k" not in (repository / "scene" / "config.pbtxt").read_text()
    assert check_repository(repository).ok
