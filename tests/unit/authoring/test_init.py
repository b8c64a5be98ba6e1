"""``triton-vision init DIR`` writes the built-in repository; the commands whose repository defaults
to ./model_repository name it where that folder is missing; ``export-repo`` falls back to it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import MODEL_REPOSITORY
from triton_vision_authoring import init
from triton_vision_cli import main as cli
from triton_vision_contract.errors import UsageError
from triton_vision_models import tensors as t
from triton_vision_models.repository import ModelRepository


def tracked_files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def builtin_with_leftovers(tmp_path: Path, monkeypatch) -> Path:
    """A copy of the built-in repository as a checkout may hold it: prepared weights, caches."""
    folder = tmp_path / "builtin"
    shutil.copytree(MODEL_REPOSITORY, folder, ignore=shutil.ignore_patterns("*.onnx", "model.source.json"))
    (folder / t.CLASSIFIER / "1" / "model.onnx").write_bytes(b"weights")
    (folder / t.CLASSIFIER / "1" / "model.onnx.partial").write_bytes(b"half")
    (folder / t.CLASSIFIER / "1" / "model.source.json").write_text("{}")
    (folder / "__pycache__").mkdir(exist_ok=True)
    (folder / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"")
    (folder / "image_guard" / "1" / "model.cpython-311.pyc").write_bytes(b"")
    monkeypatch.setattr(init, "builtin_repository", lambda: folder)
    return folder


def test_init_writes_the_built_in_repository_without_weights_caches_or_the_package_module(
    builtin_with_leftovers: Path, tmp_path: Path
):
    target = tmp_path / "mine"
    written = init.init_repository(target)
    expected = {
        path
        for path in tracked_files(MODEL_REPOSITORY)
        if path != Path("__init__.py") and path.suffix not in (".onnx", ".pyc") and path.name != "model.source.json"
    }
    assert set(written) == expected == tracked_files(target)
    assert (target / t.CLASSIFIER / "1").is_dir()  # Triton needs the version folder
    assert ModelRepository.load(target).ensembles == ModelRepository.load(MODEL_REPOSITORY).ensembles


def test_init_from_the_package_writes_every_model_of_the_checkout(tmp_path: Path):
    target = tmp_path / "mine"
    init.init_repository(target)
    assert sorted(ModelRepository.load(target).models) == sorted(ModelRepository.load(MODEL_REPOSITORY).models)


def test_init_refuses_a_non_empty_directory_unless_forced_and_keeps_other_files(tmp_path: Path):
    target = tmp_path / "mine"
    init.init_repository(target)
    config = target / t.CLASSIFIER / "config.pbtxt"
    config.write_text("edited")
    weights = target / t.CLASSIFIER / "1" / "model.onnx"
    weights.write_bytes(b"prepared")
    with pytest.raises(UsageError) as refused:
        init.init_repository(target)
    assert str(refused.value) == f"{target} is not empty (--force writes the built-in repository over it)"
    assert config.read_text() == "edited"
    init.init_repository(target, force=True)
    assert config.read_text() == (MODEL_REPOSITORY / t.CLASSIFIER / "config.pbtxt").read_text()
    assert weights.read_bytes() == b"prepared"


def test_init_into_an_empty_directory_is_no_refusal(tmp_path: Path):
    assert init.init_repository(tmp_path)


def test_init_command_prints_what_it_wrote_and_the_next_commands(tmp_path: Path, capsys):
    target = tmp_path / "R"
    assert cli.main(["init", str(target)]) == 0
    lines = capsys.readouterr().out.splitlines()
    models = len(ModelRepository.load(MODEL_REPOSITORY).models)
    assert lines[0].startswith(f"wrote the built-in model repository into {target}: {models} models, ")
    assert t.CLASSIFICATION in lines[1].strip().split(", ")
    assert lines[-2:] == [
        f"  triton-vision models prepare --model-repository {target}",
        f"  triton-vision serve --model-repository {target}",
    ]
    assert cli.main(["init", str(target)]) == 2
    assert capsys.readouterr().err == f"error: {target} is not empty (--force writes the built-in repository over it)\n"


def test_init_refuses_a_file(tmp_path: Path, capsys):
    target = tmp_path / "file"
    target.write_text("")
    assert cli.main(["init", str(target)]) == 2
    assert capsys.readouterr().err == f"error: {target} exists and is not a directory\n"


# -- the default repository, where it is missing (a wheel install) -----------------------------------
MISSING = (
    "error: model repository model_repository does not exist: `triton-vision init model_repository` writes the "
    "built-in one (or pass "
)


@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["check"],
        ["models", "status"],
        ["models", "prepare"],
        ["demo"],
        ["bench"],
        ["model-analyzer", t.CLASSIFICATION, "photo.jpg", "--config-only"],
        ["export-repo", "out", "--model-repository", "model_repository"],  # named: no built-in instead
    ],
)
def test_commands_without_the_default_repository_name_init_in_one_line(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(MISSING) and err.count("\n") == 1, err
    assert sorted(tmp_path.iterdir()) == []


def test_add_model_without_the_repository_names_init(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["add-model", str(MODEL_REPOSITORY / t.CLASSIFICATION / "spec.toml")]) != 0
    assert "`triton-vision init model_repository` writes the built-in one" in capsys.readouterr().err


def test_export_repo_without_the_default_repository_exports_the_built_in_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export-repo", "theirs", "--models", t.CLASSIFICATION, "--prefix", "tv_"]) == 0
    out = capsys.readouterr().out
    assert f"{t.CLASSIFICATION} -> theirs/tv_{t.CLASSIFICATION}" in out.splitlines()
    closure = ModelRepository.load(MODEL_REPOSITORY).closure([t.CLASSIFICATION])
    assert sorted(p.name for p in (tmp_path / "theirs").iterdir()) == sorted(f"tv_{name}" for name in closure)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs"]  # nothing else written here
