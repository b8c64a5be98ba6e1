"""Fused ensembles: the repository tritonserver is given on the local runtime.

Locally every composing model is a Python stub process of its own (the ``onnxruntime`` and
``dali`` backends too), so an ensemble request crosses a process boundary per step and waits in a
queue per step. :func:`build_overlay` writes a repository of links to the user's model folders in
which each ensemble is served by the ``fused_ensemble`` backend instead: one Python model that runs
the steps' own runners in its process (:mod:`triton_vision_models.fused`). The steps stay loaded
under their own names (clients, the bench's baseline and pipelines call them). Same names, same
tensors, same answers and errors; one queue at the entrance (docs/performance.md, docs/reliability.md).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format

import triton_vision_contract as contract
from triton_vision_models import repository as repo
from triton_vision_models.fused import ENSEMBLE_CONFIG_KEY

FUSED_BACKEND = repo.FUSED_BACKEND
ENSEMBLE_CONFIG_FILE = repo.ENSEMBLE_CONFIG_FILE
FUSABLE_KINDS = (repo.PYTHON, repo.DALI, repo.ONNXRUNTIME)
# Each instance of a fused ensemble runs one request batch on one core: DALI with one thread
# (measured: docs/performance.md), as the ONNX Runtime steps already run one intra-op thread.
STEP_SETTINGS = {"dali.num_threads": "1"}


GPU_DEVICE = Path("/dev/nvidiactl")  # present where an NVIDIA driver is loaded


def gpu_present(device: Path = GPU_DEVICE) -> bool:
    """Whether this machine has an NVIDIA GPU: Triton then gives models without an instance group
    GPU instances (DALI's nvJPEG, ONNX Runtime's CUDA), which a fused ensemble, run on the CPU, would
    not use; so ensembles run as separate steps there."""
    return device.exists()


@dataclass
class Overlay:
    """What :func:`build_overlay` made: the repository's path, and the ensembles it fused or not."""

    path: Path
    source: Path
    cached: bool = False  # the server has a response cache
    fused: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # ensemble -> why it runs as separate steps

    def fused_using(self, model: str) -> list[str]:
        """The fused ensembles that run ``model`` in their process (a step, or a nested one's step)."""
        repository = repo.ModelRepository.load(self.source)
        return [e for e in self.fused if e in repository and model in repository.composing_models(e, nested=True)]


def not_fusable(repository: repo.ModelRepository, ensemble: str, *, cached: bool = False) -> str | None:
    """Why ``ensemble`` cannot be fused (None when it can): a step that is missing, of a backend
    other than python/dali/onnxruntime, or a Python model not built on the project's adapter; with a
    response cache (``cached``), its answers or a nested ensemble's are cached: Triton's cache keeps
    the answers of an ensemble's image part, and a fused model's refusals did not pass through it
    (an ensemble step's error answer came back cached as an answer without outputs)."""
    for name in [ensemble, *repository.composing_models(ensemble, nested=True)]:
        model = repository.models.get(name)
        if model is None:
            return f"its step '{name}' is not in the repository"
        if model.is_ensemble:
            if cached and model.config.response_cache.enable:
                return f"'{name}' is cached (--cache-size): the cache keeps Triton's ensemble"
            continue
        if model.kind not in FUSABLE_KINDS:
            return f"its step '{name}' runs on the '{model.kind}' backend"
        if any(group.kind == group.KIND_GPU for group in model.config.instance_group):
            return f"its step '{name}' runs on a GPU (a fused ensemble runs on the CPU)"
        if model.kind == repo.PYTHON:
            files = model.model_files()
            if not files or "python_model(" not in files[-1].read_text(encoding="utf-8", errors="replace"):
                return f"its step '{name}' is a Python model of its own"
    return None


def leaf_steps(repository: repo.ModelRepository, ensemble: str) -> list[repo.RepositoryModel]:
    return [repository[n] for n in repository.composing_models(ensemble) if not repository[n].is_ensemble]


def fused_config(repository: repo.ModelRepository, ensemble: str) -> repo.ModelConfig:
    """The config of ``ensemble`` served by the ``fused_ensemble`` backend: its inputs and outputs,
    the entrance step's queue, as many instances as its busiest step (no response cache:
    :func:`not_fusable`)."""
    source = repository[ensemble].config
    steps = leaf_steps(repository, ensemble)
    config = repo.new_config()
    config.name = ensemble
    config.backend = FUSED_BACKEND
    config.max_batch_size = source.max_batch_size
    ragged = {tensor.name for step in steps for tensor in step.config.input if tensor.allow_ragged_batch}
    for tensor in source.input:
        added = config.input.add()
        added.CopyFrom(tensor)
        if tensor.name in ragged:
            added.allow_ragged_batch = True
    for tensor in source.output:
        config.output.add().CopyFrom(tensor)
    group = config.instance_group.add()
    group.kind = group.KIND_CPU
    group.count = max((sum(g.count or 1 for g in s.config.instance_group) or 1) for s in steps)
    entrance = next((s for s in steps if s.config.HasField("dynamic_batching")), None)
    if entrance is not None:
        config.dynamic_batching.CopyFrom(entrance.config.dynamic_batching)
    for key, value in source.parameters.items():
        config.parameters[key].CopyFrom(value)
    config.parameters[ENSEMBLE_CONFIG_KEY].string_value = ENSEMBLE_CONFIG_FILE
    config.parameters[contract.ENSEMBLE_STEPS].string_value = ",".join(repository[ensemble].steps)
    for key, value in STEP_SETTINGS.items():
        config.parameters[key].string_value = value
    return config


def build_overlay(source: Path, target: Path, *, cached: bool = False) -> Overlay:
    """A repository at ``target`` of links to ``source``'s model folders, each ensemble fused
    where it can be (:func:`not_fusable`)."""
    target.mkdir(parents=True, exist_ok=True)
    overlay = Overlay(target, source, cached)
    repository = repo.ModelRepository.load(source)
    for model_dir in repo.model_dirs(source):
        _write_entry(overlay, repository, model_dir)
    return overlay


def refresh(overlay: Overlay, name: str) -> None:
    """Write ``name``'s entry again from the model repository (its files changed, or it is new)."""
    entry = overlay.path / name
    if entry.is_symlink() or entry.is_file():
        entry.unlink()
    elif entry.is_dir():
        shutil.rmtree(entry)
    if name in overlay.fused:
        overlay.fused.remove(name)
    overlay.kept.pop(name, None)
    model_dir = overlay.source / name
    if model_dir.is_dir():
        _write_entry(overlay, repo.ModelRepository.load(overlay.source), model_dir)


def _write_entry(overlay: Overlay, repository: repo.ModelRepository, model_dir: Path) -> None:
    """Link ``model_dir``, or write its fused model: an ensemble clients call (a nested one, such as
    the cached ``NAME_infer``, runs inside the ensemble that calls it and stays Triton's, so its
    models are not loaded a third time)."""
    name = model_dir.name
    model = repository.models.get(name)
    candidate = model is not None and model.is_ensemble and name in repository.ensembles
    why = not_fusable(repository, name, cached=overlay.cached) if candidate else ""
    if not candidate or why is not None:
        os.symlink(model_dir.resolve(), overlay.path / name, target_is_directory=True)
        if why:
            overlay.kept[name] = why
        return
    fused_dir = overlay.path / name
    fused_dir.mkdir()
    for entry in model_dir.iterdir():
        if entry.name != repo.CONFIG_FILENAME:
            os.symlink(entry.resolve(), fused_dir / entry.name, target_is_directory=entry.is_dir())
    (fused_dir / ENSEMBLE_CONFIG_FILE).write_text(
        (model_dir / repo.CONFIG_FILENAME).read_text(encoding="utf-8"), encoding="utf-8"
    )
    header = f"# '{name}' served in one process by the fused_ensemble backend; its steps: {ENSEMBLE_CONFIG_FILE}\n"
    (fused_dir / repo.CONFIG_FILENAME).write_text(
        header + text_format.MessageToString(fused_config(repository, name)), encoding="utf-8"
    )
    overlay.fused.append(name)
