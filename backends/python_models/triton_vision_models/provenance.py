"""Where each served ONNX file came from: ``model.source.json`` next to ``model.onnx``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import tensors as t
from .model_config import ModelConfig, RequestData


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "download" | "local" | "stand-in"
    origin: str
    sha256: str  # of the served file
    # Of the file as it arrived (--from, a download), where serving it meant rewriting it (tensors
    # renamed, a state dict exported); "" when the served file is the one that arrived.
    arrived_sha256: str = ""

    @classmethod
    def installed(cls, kind: str, origin: str, sha256: str, arrived_sha256: str = "") -> ModelSource:
        """The source of a file served with ``sha256``, made from one that arrived with ``arrived_sha256``."""
        return cls(kind, origin, sha256, arrived_sha256 if arrived_sha256 != sha256 else "")

    @property
    def is_stand_in(self) -> bool:
        return self.kind == "stand-in"

    def from_origin(self) -> str:
        """``from ORIGIN (sha256 ...)``, the sha256 of that file (what ``sha256sum ORIGIN`` says), and the
        served copy's where serving it meant rewriting it."""
        text = f"from {self.origin} (sha256 {(self.arrived_sha256 or self.sha256)[:12]}..."
        if self.arrived_sha256:
            text += f"; served as a rewritten copy, sha256 {self.sha256[:12]}..."
        return text + ")"

    def describe(self) -> str:
        if self.is_stand_in:
            return "STAND-IN with random weights (not pretrained: its answers are meaningless)"
        return f"{self.kind} {self.from_origin()}"

    def write(self, version_dir: Path) -> None:
        data = {key: value for key, value in asdict(self).items() if value != "" or key != "arrived_sha256"}
        (version_dir / t.SOURCE_FILENAME).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def read(cls, version_dir: Path) -> ModelSource | None:
        path = version_dir / t.SOURCE_FILENAME
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(data["kind"], data["origin"], data["sha256"], data.get("arrived_sha256", ""))


def collect_sources(repository: Path) -> dict[str, dict[str, str]]:
    """{model name: source} for every prepared model of a repository (version folders)."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted(repository.glob(f"*/*/{t.SOURCE_FILENAME}")):
        source = ModelSource.read(path.parent)
        if source is not None:
            found[path.parent.parent.name] = asdict(source)
    return found


def repository_ensembles(repository: Path) -> list[str]:
    """Names of the repository's ensembles, whether they loaded or not."""
    from .repository import ModelRepository

    return ModelRepository.load(repository).ensembles


class ModelInfo:
    """Runner of the ``model_info`` model: answers with the repository's model sources as JSON, or
    with its ensembles' names for the query "ensembles" (so a probe knows what should answer)."""

    def __init__(self, repository: Path) -> None:
        self.repository = repository

    @classmethod
    def from_config(cls, config: ModelConfig) -> ModelInfo:
        return cls(config.repository_dir.parent)

    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray]]:
        return [{t.INFO_JSON: np.array([self.answer(request)], dtype=np.object_)} for request in requests]

    def answer(self, request: RequestData) -> bytes:
        query = request.inputs.get(t.INFO_QUERY)
        text = query.reshape(-1)[0] if query is not None and query.size else b""
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        if text.strip() == t.INFO_ENSEMBLES:
            return json.dumps(repository_ensembles(self.repository)).encode("utf-8")
        return json.dumps(collect_sources(self.repository)).encode("utf-8")
