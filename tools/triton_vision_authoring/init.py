"""``triton-vision init DIR``: write the built-in model repository into a directory.

The built-in repository (configs, ensemble specs, labels, the Python models and generated DALI
pipelines) ships as package data of ``triton_vision_repository``: ``model_repository/`` in a
checkout, a folder of site-packages once the wheel is installed. Model files never ship (nor are
they written here, even from a checkout that has them): ``triton-vision models prepare`` makes them.

The commands whose repository defaults to ``./model_repository`` name this command where that folder
is missing (:mod:`triton_vision_authoring.repository_option`), and ``export-repo`` reads the built-in
repository from here where there is no local one (:func:`repository_or_builtin`).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import importlib.resources
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from triton_vision_authoring.repository_option import DEFAULT_REPOSITORY, missing_repository
from triton_vision_contract.errors import UsageError

if TYPE_CHECKING:  # importlib.resources.abc from Python 3.11 on
    from importlib.abc import Traversable

BUILTIN_PACKAGE = "triton_vision_repository"  # model_repository/ in a checkout, package data in the wheel
PACKAGE_MODULE = "__init__.py"  # makes the folder a package; Triton ignores it, init does not write it
# Never written: Python's caches and model files (`models prepare` makes them). pyproject.toml's
# exclude-package-data keeps the same ones out of the wheel (tests/unit/project/test_packaging.py).
SKIPPED = ("__pycache__", "*.pyc", "*.onnx", "*.onnx.partial", "model.source.json")


def builtin_repository() -> Traversable:
    """The built-in repository's folder (a Path for a checkout or an installed wheel)."""
    return importlib.resources.files(BUILTIN_PACKAGE)


def is_skipped(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in SKIPPED)


def _write_tree(source: Traversable, target: Path, relative: Path, written: list[Path]) -> None:
    (target / relative).mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        if is_skipped(entry.name) or (relative == Path() and entry.name == PACKAGE_MODULE):
            continue
        if entry.is_dir():
            _write_tree(entry, target, relative / entry.name, written)
        else:
            (target / relative / entry.name).write_bytes(entry.read_bytes())
            written.append(relative / entry.name)


def write_builtin_repository(target: Path) -> list[Path]:
    """Write the built-in repository's files into ``target`` (created; files of the same name
    replaced, others left as they are); returns the files written, relative to ``target``."""
    written: list[Path] = []
    _write_tree(builtin_repository(), target, Path(), written)
    return written


def init_repository(target: Path, *, force: bool = False) -> list[Path]:
    """``triton-vision init``: the built-in repository written into ``target``, which must be
    missing or empty unless ``force``."""
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise UsageError(f"{target} is not empty (--force writes the built-in repository over it)")
    return write_builtin_repository(target)


def init_report(target: Path, written: list[Path]) -> list[str]:
    """What ``init`` prints: what it wrote, then the next commands."""
    models = sorted({path.parts[0] for path in written if len(path.parts) > 1})
    return [
        f"wrote the built-in model repository into {target}: {len(models)} models, {len(written)} files "
        "(no model files yet)",
        f"  {', '.join(models)}",
        "next:",
        f"  triton-vision models prepare --model-repository {target}",
        f"  triton-vision serve --model-repository {target}",
    ]


@contextlib.contextmanager
def repository_or_builtin(path: Path | None) -> Iterator[Path]:
    """``path``, which must exist; for None, ``./model_repository`` where it exists, else (a wheel
    install) a copy of the built-in repository that lasts as long as the context."""
    if path is None and not DEFAULT_REPOSITORY.is_dir():
        with tempfile.TemporaryDirectory(prefix="triton-vision-builtin-") as folder:
            copy = Path(folder) / DEFAULT_REPOSITORY.name
            write_builtin_repository(copy)
            yield copy
        return
    path = DEFAULT_REPOSITORY if path is None else path
    if not path.is_dir():
        raise missing_repository(path)
    yield path


# -- the command ------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write the built-in model repository (configs, ensemble specs, labels, the Python models, the DALI "
        "pipelines; no model files) into DIR, e.g. after installing the wheel. Then: triton-vision models "
        "prepare --model-repository DIR; triton-vision serve --model-repository DIR."
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="where to write it (created; must be empty)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a DIR that is not empty: the built-in files are replaced, other files (model files) kept",
    )


def run(args: argparse.Namespace) -> int:
    written = init_repository(args.directory, force=args.force)
    print("\n".join(init_report(args.directory, written)))
    return 0
