"""``triton-vision export-repo``: a prefixed copy that passes ``check`` and names no unprefixed model."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format

from tests.conftest import MODEL_REPOSITORY, copy_model_dirs
from tests.support.modelconfigs import load_config
from tests.unit.authoring.test_check import classifier_onnx
from triton_vision_authoring.check import check_repository
from triton_vision_authoring.export_repo import export_repository, rename_config_text
from triton_vision_cli.main import main
from triton_vision_contract.errors import UsageError
from triton_vision_models.repository import model_dirs, new_config

CLASSIFICATION_MODELS = [
    "classification",
    "classification_infer",
    "classification_postprocess",
    "model_info",
    "image_guard",
    "classification_preprocess",
    "resnet18",
]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The whole repository (no ONNX files), with a small classifier file in resnet18/1/."""
    repository = copy_model_dirs(tmp_path / "source", [d.name for d in model_dirs(MODEL_REPOSITORY)])
    classifier_onnx(repository / "resnet18" / "1" / "model.onnx")
    return repository


def test_export_of_one_ensemble_takes_its_steps_and_model_info_renamed(source: Path, tmp_path: Path):
    dest = tmp_path / "theirs"
    exported = export_repository(source, dest, prefix="tv_", models=["classification"])
    assert [(m.source, m.name) for m in exported] == [(n, "tv_" + n) for n in CLASSIFICATION_MODELS]
    assert sorted(p.name for p in dest.iterdir()) == sorted("tv_" + n for n in CLASSIFICATION_MODELS)
    for name in CLASSIFICATION_MODELS:
        assert load_config(dest / ("tv_" + name)).name == "tv_" + name
    ensemble = load_config(dest / "tv_classification")
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == [
        "tv_classification_infer",
        "tv_classification_postprocess",
    ]
    cached = load_config(dest / "tv_classification_infer")
    assert [s.model_name for s in cached.ensemble_scheduling.step] == [
        "tv_image_guard",
        "tv_classification_preprocess",
        "tv_resnet18",
    ]
    postprocess = load_config(dest / "tv_classification_postprocess")
    assert postprocess.parameters["labels"].string_value == "tv_resnet18/imagenet_labels.txt"
    assert (dest / "tv_resnet18" / "1" / "model.onnx").read_bytes() == (
        source / "resnet18" / "1" / "model.onnx"
    ).read_bytes()


def test_exported_repository_passes_check_and_keeps_the_config_comments(source: Path, tmp_path: Path):
    dest = tmp_path / "theirs"
    export_repository(source, dest, prefix="acme-vision.")
    report = check_repository(dest)
    assert [str(p) for p in report.problems] == []
    assert len(report.models) == len(model_dirs(MODEL_REPOSITORY))
    original = (MODEL_REPOSITORY / "classification" / "config.pbtxt").read_text().splitlines()
    copied = (dest / "acme-vision.classification" / "config.pbtxt").read_text().splitlines()
    assert [line for line in copied if line.startswith("#")] == [line for line in original if line.startswith("#")]


def test_export_beside_a_users_models_leaves_them_alone_and_refuses_a_clash(source: Path, tmp_path: Path):
    dest = tmp_path / "theirs"
    theirs = dest / "classification"
    theirs.mkdir(parents=True)
    (theirs / "config.pbtxt").write_text('name: "classification"\nbackend: "python"\n')
    export_repository(source, dest, prefix="tv_", models=["classification"])
    assert (theirs / "config.pbtxt").read_text() == 'name: "classification"\nbackend: "python"\n'
    with pytest.raises(UsageError) as refused:
        export_repository(source, dest, prefix="tv_", models=["resnet18"])
    assert str(refused.value) == f"{dest} already has tv_resnet18 (choose another --prefix, or --force to replace)"
    export_repository(source, dest, prefix="tv_", models=["resnet18"], force=True)


def test_export_refuses_an_unknown_model_and_a_prefix_triton_cannot_name(source: Path, tmp_path: Path):
    with pytest.raises(UsageError, match="model 'resnet19' is not in the repository"):
        export_repository(source, tmp_path / "d", prefix="tv_", models=["resnet19"])
    with pytest.raises(UsageError, match="prefix 'a/b' may hold only letters, digits"):
        export_repository(source, tmp_path / "d", prefix="a/b")


def test_a_config_the_text_rewrite_cannot_follow_is_written_from_the_renamed_protobuf():
    text = '  name: "resnet18"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 4\n'  # indented name
    config = text_format.Parse(text, new_config())
    rewritten = rename_config_text(text, config, {"resnet18": "tv_resnet18"})
    assert rewritten.startswith("# Written by triton-vision export-repo.\n")
    assert 'name: "tv_resnet18"' in rewritten


def test_export_repo_command_prints_the_copy_checks_it_and_says_how_clients_call_it(
    source: Path, tmp_path: Path, capsys
):
    dest = tmp_path / "theirs"
    code = main(
        ["export-repo", str(dest), "--prefix", "tv_", "--models", "classification", "--model-repository", str(source)]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == f"classification -> {dest / 'tv_classification'}"
    assert f"{dest}: 7 models checked, ok" in out
    assert out[-1].endswith("triton-vision classify IMAGE --model-prefix tv_")


def test_export_copies_files_others_can_read_whatever_the_source_modes(source: Path, tmp_path: Path):
    import os
    import stat

    private = source / "resnet18" / "1" / "model.onnx"
    private.chmod(0o600)  # as models prepare wrote them before
    (source / "resnet18").chmod(0o700)
    previous = os.umask(0o022)
    try:
        export_repository(source, tmp_path / "theirs", prefix="tv_", models=["classification"])
    finally:
        os.umask(previous)
    copied = tmp_path / "theirs" / "tv_resnet18"
    assert stat.S_IMODE((copied / "1" / "model.onnx").stat().st_mode) == 0o644
    assert stat.S_IMODE(copied.stat().st_mode) == 0o755
    assert stat.S_IMODE((copied / "1").stat().st_mode) == 0o755


def test_export_repo_command_refuses_a_clash_as_a_usage_error(source: Path, tmp_path: Path, capsys):
    dest = tmp_path / "theirs"
    args = ["export-repo", str(dest), "--prefix", "tv_", "--models", "resnet18", "--model-repository", str(source)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {dest} already has tv_resnet18 (choose another --prefix, or --force to replace)"
    )


def test_an_exported_ensembles_spec_regenerates_the_exported_names(tmp_path):
    """The kept spec.toml follows the renames: add-model on the copy writes tv_* models, nothing else."""
    from triton_vision_authoring.add_model.add_model import add_model

    source = copy_model_dirs(tmp_path / "source", [d.name for d in model_dirs(MODEL_REPOSITORY)])
    dest = tmp_path / "dest"
    export_repository(source, dest, prefix="tv_", models=["classification"])
    spec = (dest / "tv_classification" / "spec.toml").read_text()
    assert 'name = "tv_classification"' in spec and 'model_name = "tv_resnet18"' in spec
    assert 'labels = "../tv_resnet18/imagenet_labels.txt"' in spec and 'shared_prefix = "tv_"' in spec
    before = {d.name: load_config(d) for d in dest.iterdir()}
    result = add_model(dest / "tv_classification" / "spec.toml", dest)
    five = [
        "tv_classification",
        "tv_classification_infer",
        "tv_classification_preprocess",
        "tv_resnet18",
        "tv_classification_postprocess",
    ]
    assert result.written == five and result.shared == []
    assert sorted(p.name for p in dest.iterdir()) == sorted([*five, "tv_image_guard", "tv_model_info"])
    # Regenerated under the exported names: the same configs (only comments name the spec differently).
    assert {d.name: load_config(d) for d in dest.iterdir()} == before
