"""A pipeline spec (TOML): a detection ensemble, then a second ensemble on every object it finds.

```toml
name = "pets_in_scene"
task = "pipeline"

[detect]
ensemble = "yolo"              # a detection ensemble of the repository
classes = ["cat", "dog"]       # labels passed on (default: all)
score_threshold = 0.4          # default of the request parameter of the same name
max_objects = 16               # default of the request parameter max_objects

[then]
ensemble = "pets"              # a classification ensemble, run on every object's crop
margin = 0.0                   # fraction of the box's width/height added on each side
```

:data:`PIPELINE_KEYS` lists every key with its meaning (the docs' table is tied to it by a test).
Whether the named ensembles exist and fit is the repository's business (:mod:`.pipeline`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import triton_vision_contract as contract
from triton_vision_authoring.add_model.ensemble_spec import (
    NAME_PATTERN,
    QueueSpec,
    SpecError,
    Table,
    parse_queue,
    refuse_unknown_keys,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_MAX_OBJECTS = 16  # objects per image sent to the second stage, unless the spec or request says

PIPELINE_KEYS: dict[str, dict[str, tuple[str, str]]] = {
    "": {
        "name": ("string", "the pipeline's name (an ensemble); its objects step is NAME_objects"),
        "task": ("string", '"pipeline"'),
        "description": ("string", "a line for the generated configs' comments"),
        "max_queue_size": (
            "integer",
            "requests that may wait at the objects step; more are refused at once (0: no bound)",
        ),
        "queue_timeout_ms": ("integer", "a request that waited this long at the objects step is refused (0: no limit)"),
    },
    "detect": {
        "ensemble": (
            "string",
            "a detection (or instance-segmentation, keypoints) ensemble of the repository: its image part runs, "
            "then its post-processing",
        ),
        "classes": ("list of strings", "the detector's labels whose objects go on (default: all)"),
        "score_threshold": (
            "number",
            f"default of the request parameter score_threshold (default {contract.DEFAULT_SCORE_THRESHOLD})",
        ),
        "max_objects": (
            "integer",
            f"default of the request parameter max_objects, per image (default {DEFAULT_MAX_OBJECTS})",
        ),
    },
    "then": {
        "ensemble": (
            "string",
            "a classification or embedding ensemble of the repository, run on every object's crop with its own "
            "preprocessing",
        ),
        "margin": (
            "number",
            "fraction of the box's width and height added on each side before cropping, 0..1 (default 0)",
        ),
    },
}


@dataclass(frozen=True)
class DetectStage:
    ensemble: str
    classes: tuple[str, ...] | None = None  # None: every label
    score_threshold: float = contract.DEFAULT_SCORE_THRESHOLD
    max_objects: int = DEFAULT_MAX_OBJECTS


@dataclass(frozen=True)
class ThenStage:
    ensemble: str
    margin: float = 0.0


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    source: Path  # the spec file
    detect: DetectStage
    then: ThenStage
    description: str = ""
    queue: QueueSpec = QueueSpec()
    task: str = contract.PIPELINE

    @property
    def objects_name(self) -> str:
        return f"{self.name}_objects"


def spec_task(text: str, path: Path) -> str | None:
    """The ``task`` a spec's TOML says (None when unreadable: the full parser names the problem)."""
    try:
        task = tomllib.loads(text).get("task")
    except tomllib.TOMLDecodeError:
        return None
    return task if isinstance(task, str) else None


def _ensemble(table: Table) -> str:
    name = table.get("ensemble", str, "an ensemble's name")
    if name is None:
        raise SpecError(
            f"{table.path.name}: [{table.table}] 'ensemble' is missing ({PIPELINE_KEYS[table.table]['ensemble'][1]})"
        )
    if not NAME_PATTERN.fullmatch(name):
        raise table.fail("ensemble", "an ensemble's name")
    return name


def parse_pipeline_spec(text: str, path: Path) -> PipelineSpec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path.name}: not valid TOML: {exc}") from None
    refuse_unknown_keys(data, path, PIPELINE_KEYS)
    top = Table(data, path, "")
    name = top.get("name", str, "a model name")
    if name is None:
        raise SpecError(f"{path.name}: 'name' is missing (the pipeline's name)")
    if not NAME_PATTERN.fullmatch(name):
        raise top.fail("name", "letters, digits, '_', '.' and '-' (not starting with '.' or '-')")
    if top.get("task", str, '"pipeline"') != contract.PIPELINE:
        raise top.fail("task", '"pipeline"')
    for table in ("detect", "then"):
        if not isinstance(data.get(table), dict):
            raise SpecError(f"{path.name}: the [{table}] table is missing ({', '.join(PIPELINE_KEYS[table])})")
    detect, then = Table(data["detect"], path, "detect"), Table(data["then"], path, "then")
    classes = detect.get("classes", list, "a list of label names")
    if classes is not None and (not classes or not all(isinstance(c, str) and c for c in classes)):
        raise detect.fail("classes", "a non-empty list of label names")
    threshold = detect.get("score_threshold", (int, float), "a number in [0, 1]", contract.DEFAULT_SCORE_THRESHOLD)
    if not 0 <= threshold <= 1:
        raise detect.fail("score_threshold", "a number in [0, 1]")
    max_objects = detect.get("max_objects", int, "a whole number >= 1", DEFAULT_MAX_OBJECTS)
    if max_objects < 1:
        raise detect.fail("max_objects", "a whole number >= 1")
    margin = then.get("margin", (int, float), "a number in [0, 1]", 0.0)
    if not 0 <= margin <= 1:
        raise then.fail("margin", "a number in [0, 1]")
    queue = parse_queue(top)
    return PipelineSpec(
        name=name,
        source=path,
        detect=DetectStage(_ensemble(detect), tuple(classes) if classes else None, float(threshold), max_objects),
        then=ThenStage(_ensemble(then), float(margin)),
        description=top.get("description", str, "a string", ""),
        queue=queue,
    )
