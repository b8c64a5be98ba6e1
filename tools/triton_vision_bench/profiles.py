"""What the bench needs to know about an ensemble, read from the model repository.

:func:`profile` asks :class:`triton_vision_models.repository.ModelRepository` for the ensemble's
task (told by its outputs), its composing models and its ONNX step; the ensemble's wiring names
the ONNX model's inputs after the preprocessing outputs that feed them (``data`` <- ``PIXELS``),
so the client-side-preprocessing baseline can send the reference preprocessing to the bare model under the model's own
names, and ask it for the outputs the ensemble reads. Any ensemble of a known task can be
measured, whatever it and its models are called; the sweep settings are the task's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triton_vision_authoring.repository_option import missing_repository
from triton_vision_bench import preprocess
from triton_vision_bench.messages import BenchUsageError
from triton_vision_models import tensors as t
from triton_vision_models.preprocessing import PreprocessSpec
from triton_vision_models.repository import ONNXRUNTIME, ModelRepository


@dataclass(frozen=True)
class TaskSettings:
    """How a task is measured (tuned on a 2-core CPU: the detector takes seconds per image)."""

    in_process_batch: int  # the best batch in-process (and for the work bound)
    concurrency: tuple[int, ...]  # the ensemble's sweep
    baseline_concurrency: tuple[int, ...]  # the baseline's sweep
    min_requests: int  # completions per point, however long it takes (bounded by max_point_s)


TASK_SETTINGS = {
    t.CLASSIFICATION: TaskSettings(8, (1, 2, 4, 8, 16), (1, 2, 4, 8, 16), 8),
    t.DETECTION: TaskSettings(1, (1, 2), (1, 2), 2),
    t.SEGMENTATION: TaskSettings(2, (1, 2, 4), (1, 2), 2),
    t.EMBEDDING: TaskSettings(8, (1, 2, 4, 8, 16), (1, 2, 4, 8, 16), 8),  # a classifier's backbone
    # Detectors with more to say per detection: detection's settings.
    t.INSTANCE_SEGMENTATION: TaskSettings(1, (1, 2), (1, 2), 2),
    t.KEYPOINT_TASK: TaskSettings(1, (1, 2), (1, 2), 2),
}


@dataclass(frozen=True)
class Profile:
    ensemble: str
    task: str
    model: str  # the ONNX model the baseline calls directly
    model_path: Path  # its file, which the in-process paths run
    steps: tuple[str, ...]  # every model the ensemble runs, in step order (nested ensembles before their steps)
    model_inputs: dict[str, str]  # ONNX model input -> the preprocessing output that feeds it
    model_outputs: tuple[str, ...]  # what the baseline asks the bare model for
    settings: TaskSettings
    pre: PreprocessSpec  # the ensemble's spec's preprocessing
    nested: tuple[str, ...] = ()  # the ensembles among steps (NAME_infer): no instance, nothing "busy"
    output_tensors: dict[str, str] = field(default_factory=dict)  # ONNX model output -> the tensor it feeds

    def preprocess(self, data: bytes) -> dict[str, np.ndarray]:
        """The spec's preprocessing of one encoded image (OpenCV), under the ONNX model's input names."""
        made = preprocess.tensors(data, self.pre)
        return {name: made[output] for name, output in self.model_inputs.items()}


def load_repository(path: Path) -> ModelRepository:
    if not path.is_dir():
        raise BenchUsageError(str(missing_repository(path)))
    return ModelRepository.load(path)


def onnx_steps(repository: ModelRepository, ensemble: str) -> list[tuple[list[Any], Any]]:
    """(the steps of the ensemble that holds it, the step) for each ONNX Runtime step, nested ensembles
    (a generated ensemble's cached ``NAME_infer``) searched too."""
    steps = list(repository[ensemble].config.ensemble_scheduling.step)
    found: list[tuple[list[Any], Any]] = []
    for step in steps:
        model = repository.models.get(step.model_name)
        if model is None:
            continue
        if model.kind == ONNXRUNTIME:
            found.append((steps, step))
        elif model.is_ensemble and step.model_name != ensemble:
            found.extend(onnx_steps(repository, step.model_name))
    return found


def profile(repository: ModelRepository, ensemble: str) -> Profile:
    """The ensemble's profile; :class:`BenchUsageError` naming what the bench cannot measure."""
    ensembles = repository.ensembles
    if ensemble not in ensembles:
        raise BenchUsageError(
            f"no ensemble '{ensemble}' in {repository.path} (ensembles: {', '.join(ensembles) or 'none'})"
        )
    task = repository[ensemble].task
    if task not in TASK_SETTINGS:
        outputs = ", ".join(repository[ensemble].output_names)
        raise BenchUsageError(
            f"ensemble '{ensemble}' (outputs {outputs}) is of no task the bench knows ({', '.join(TASK_SETTINGS)})"
        )
    found = onnx_steps(repository, ensemble)
    if len(found) != 1:
        names = ", ".join(s.model_name for _, s in found) or "none"
        raise BenchUsageError(f"ensemble '{ensemble}' needs exactly one ONNX Runtime step for the bench, has {names}")
    containing, step = found[0]
    steps = tuple(repository.composing_models(ensemble, nested=True))
    made_by = {tensor: output for s in containing for output, tensor in s.output_map.items()}  # tensor -> output
    model_inputs = {}
    for model_input, tensor in step.input_map.items():
        output = made_by.get(tensor)
        if output not in preprocess.OUTPUTS:
            raise BenchUsageError(
                f"ensemble '{ensemble}': input '{model_input}' of '{step.model_name}' reads '{tensor}', not one of"
                f" the preprocessing outputs the bench makes ({', '.join(preprocess.OUTPUTS)})"
            )
        model_inputs[model_input] = output
    files = repository[step.model_name].model_files()
    model_path = files[-1] if files else repository[step.model_name].directory / "1" / "model.onnx"
    return Profile(
        ensemble=ensemble,
        task=task,
        model=step.model_name,
        model_path=model_path,
        steps=steps,
        model_inputs=dict(sorted(model_inputs.items())),
        model_outputs=tuple(sorted(step.output_map.keys())),
        settings=TASK_SETTINGS[task],
        pre=preprocess.spec_of(repository, ensemble),
        nested=tuple(m for m in steps if m in repository and repository[m].is_ensemble),
        output_tensors=dict(step.output_map),
    )
