"""Errors of repository authoring (add-model, check, export-repo, init, model files), under the
project's one root (:mod:`triton_vision_contract.errors`, where the whole tree is drawn)."""

from __future__ import annotations

from triton_vision_contract.errors import TritonVisionError, UsageError

__all__ = ["RepositoryUnusableError", "RuntimeMissingError", "TritonVisionError", "UsageError"]


class RepositoryUnusableError(UsageError):
    """The model repository given does not exist, holds no such model, or has no ensemble."""


class RuntimeMissingError(TritonVisionError):
    """Something a command needs is not installed or not prepared."""
