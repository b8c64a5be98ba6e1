"""The ``--model-repository`` option the commands share, and the check that it names one."""

from __future__ import annotations

import argparse
from pathlib import Path

from triton_vision_authoring.errors import RepositoryUnusableError
from triton_vision_models.repository import ModelRepository

DEFAULT_REPOSITORY = Path("model_repository")


def add_repository(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-repository",
        type=Path,
        default=DEFAULT_REPOSITORY,
        help="the model repository (default: %(default)s, relative to the current directory)",
    )


def missing_repository(path: Path, option: str = "--model-repository DIR") -> RepositoryUnusableError:
    """The one-line error for a repository that is not there: a wheel install has no
    ``./model_repository`` until ``init`` writes one."""
    return RepositoryUnusableError(
        f"model repository {path} does not exist: `triton-vision init {path}` writes the built-in one "
        f"(or pass {option})"
    )


def existing_repository(path: Path, option: str = "--model-repository DIR") -> ModelRepository:
    """The repository at ``path``; :func:`missing_repository`'s error naming ``option`` when there is none."""
    if not path.is_dir():
        raise missing_repository(path, option)
    return ModelRepository.load(path)
