"""Label files: one label per line (Triton's ``label_filename`` format), named by a model parameter."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError
from .model_config import ModelConfig

LABELS_PARAMETER = "labels"  # a post-processing model's parameter: <other model>/<file>, from the repository root


def load_labels(path: Path) -> tuple[str, ...]:
    """One label per line; blank lines are skipped."""
    if not path.is_file():
        raise ConfigError(f"label file {path} does not exist")
    labels = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not labels:
        raise ConfigError(f"label file {path} is empty")
    return labels


def labels_of(config: ModelConfig) -> tuple[str, ...]:
    """The labels of the file that the model's ``labels`` parameter names, relative to the repository."""
    name = config.setting(LABELS_PARAMETER, "")
    if not name:
        raise ConfigError(f"model '{config.name}': parameter '{LABELS_PARAMETER}' names no label file")
    return load_labels(config.repository_dir.parent / name)
