"""pyproject.toml's explicit package list ships what the wheel needs to serve: every package folder,
the Python-based backends' model.py files, the built-in repository with its version folders, and
no model files. tests/integration/test_wheel.py builds the wheel and serves from it."""

from __future__ import annotations

import fnmatch
import glob
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MODEL_REPOSITORY, ROOT
from triton_vision_authoring import init
from triton_vision_serving.install import BACKENDS_PACKAGE, PYTHON_BASED_BACKENDS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
PACKAGE_ROOTS = ("client", "tools", "backends/python_models")  # folders whose subfolders are packages


def package_dir(name: str) -> str:
    """The folder setuptools builds package ``name`` from: its own package-dir entry, else its
    parent's folder and its last name."""
    mapping = SETUPTOOLS["package-dir"]
    if name in mapping:
        return mapping[name]
    parent, _, last = name.rpartition(".")
    assert parent, f"package {name} has no package-dir entry"
    return f"{package_dir(parent)}/{last}"


def package_folders() -> dict[str, str]:
    """Every folder with an __init__.py under the package roots, by its import name."""
    found = {}
    for root in PACKAGE_ROOTS:
        for init_file in sorted((ROOT / root).rglob("__init__.py")):
            folder = init_file.parent.relative_to(ROOT / root)
            if "__pycache__" not in folder.parts:
                found[".".join(folder.parts)] = f"{root}/{folder.as_posix()}"
    return found


def shipped_data(package: str) -> set[Path]:
    """The files of ``package``'s folder that its package-data globs take and its exclude-package-data
    patterns leave, as setuptools matches them (glob from the folder, fnmatch on the joined path)."""
    base = ROOT / package_dir(package)
    taken = {
        Path(path)
        for pattern in SETUPTOOLS["package-data"].get(package, [])
        for path in glob.glob(str(base / pattern), recursive=True)
        if Path(path).is_file()
    }
    excluded = [str(base / pattern) for pattern in SETUPTOOLS.get("exclude-package-data", {}).get(package, [])]
    return {path.relative_to(base) for path in taken if not any(fnmatch.fnmatch(str(path), x) for x in excluded)}


def git_files(folder: Path) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "."],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    return [Path(line) for line in listed.stdout.splitlines() if (folder / line).is_file()]


def test_every_package_folder_is_listed_with_its_folder():
    folders = package_folders()
    assert folders, "no package folders found"
    for name, folder in folders.items():
        assert name in SETUPTOOLS["packages"], f"{folder} is a package that the wheel would leave out"
        assert package_dir(name) == folder, f"package {name}: package-dir says {package_dir(name)}, not {folder}"


def test_every_listed_package_is_a_folder_with_an_init_file():
    for name in SETUPTOOLS["packages"]:
        assert (ROOT / package_dir(name) / "__init__.py").is_file(), f"{name}: no {package_dir(name)}/__init__.py"
    assert package_dir(BACKENDS_PACKAGE) == "backends"
    assert package_dir(init.BUILTIN_PACKAGE) == MODEL_REPOSITORY.name


def test_the_python_based_backends_model_files_ship():
    shipped = shipped_data(BACKENDS_PACKAGE)
    for backend in PYTHON_BASED_BACKENDS:
        assert (ROOT / "backends" / backend / "model.py").is_file()
        assert Path(backend) / "model.py" in shipped, f"backends/{backend}/model.py is not package data"
    assert not any(path.parts[0] == "python_models" for path in shipped), "the models' library is a package"


def test_the_built_in_repository_ships_whole_with_its_version_folders_and_no_model_files():
    shipped = shipped_data(init.BUILTIN_PACKAGE)
    wanted = {path for path in git_files(MODEL_REPOSITORY) if not init.is_skipped(path.name)}
    missing = wanted - shipped - {Path(init.PACKAGE_MODULE)}  # the module ships as a module
    assert not missing, f"model_repository files the wheel would leave out: {sorted(map(str, missing))}"
    for model in (d for d in MODEL_REPOSITORY.iterdir() if (d / "config.pbtxt").is_file()):
        assert any(p.parts[:2] == (model.name, "1") for p in shipped), f"{model.name}/1/ would not ship"


@pytest.mark.parametrize(
    "leftover", ["1/model.onnx", "1/model.onnx.partial", "1/model.source.json", "1/__pycache__/model.cpython-311.pyc"]
)
def test_model_files_and_caches_neither_ship_nor_are_written_by_init(leftover):
    """A checkout's prepared model files (``models prepare`` writes them into model_repository/)."""
    base = ROOT / package_dir(init.BUILTIN_PACKAGE)
    path = base / "resnet18" / leftover
    excluded = SETUPTOOLS["exclude-package-data"][init.BUILTIN_PACKAGE]
    assert any(fnmatch.fnmatch(str(path), str(base / pattern)) for pattern in excluded), f"{leftover} would ship"
    assert any(init.is_skipped(part) for part in Path(leftover).parts), f"init would write {leftover}"


def test_no_model_file_would_ship():
    for package in SETUPTOOLS["package-data"]:
        onnx = [path for path in shipped_data(package) if path.suffix == ".onnx"]
        assert not onnx, f"{package} would ship {onnx}"
