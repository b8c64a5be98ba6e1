"""Triton Model Analyzer against this project's local server (remote launch mode).

Model Analyzer (PyPI ``triton-model-analyzer``) is not a dependency of the project: it brings
matplotlib, numba, optuna, SQLAlchemy and docker, and pins ``cuda-python``; install it in an
environment of its own (``make model-analyzer-env`` makes ``.venv-ma/``); ``triton-vision
model-analyzer ENSEMBLE IMG...`` writes the files below and runs it. It runs here in its
*remote* launch mode against ``triton-vision serve --allow-model-control``: it loads each
configuration it tries through Triton's model-control API (a load with a config override), so the
local server's Python-based backends serve them. For an ensemble it always runs its quick search
over the composing models' ``max_batch_size``, ``instance_group`` count and dynamic batching;
``cpu_only_composing_models`` keeps their instances on the CPU (its default, ``KIND_GPU``, does
not load without a GPU). perf_analyzer is this environment's (tritonclient 2.51), fed the real
images as a JSON input-data file (:func:`triton_vision_bench.perf.write_input_data`).

Model Analyzer refuses an ensemble with an ensemble among its steps ("does not support ensembles
as a composing model type"), and a generated ensemble's image part is one (``NAME_infer``, kept by
the response cache): :func:`flattened_repository` gives it a repository in which that step is
replaced by the steps it runs, the other models linked to the originals. The server loads the
flattened ensemble through the model-control API like every configuration Model Analyzer tries.

:func:`model_analyzer_config` returns the YAML document (written as JSON, which is YAML) for
``model-analyzer profile -f FILE``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from google.protobuf import text_format

import triton_vision_contract as contract
from triton_vision_bench.perf import perf_analyzer_binary
from triton_vision_contract.errors import UsageError
from triton_vision_models.repository import CONFIG_FILENAME, ModelConfig, ModelRepository

DEFAULT_EXECUTABLE = Path(".venv-ma/bin/model-analyzer")  # where `make model-analyzer-env` puts it
DEFAULT_WORKDIR = Path("out/model-analyzer")


def composing_models(model_repository: Path, ensemble: str) -> list[str]:
    """The models ``ensemble`` runs (Model Analyzer must name each to keep it on the CPU)."""
    repository = ModelRepository.load(model_repository)
    if ensemble not in repository.ensembles:
        raise UsageError(
            f"'{ensemble}' is not an ensemble of {model_repository} (its ensembles: {', '.join(repository.ensembles)})"
        )
    return repository.composing_models(ensemble)


def inline_nested_ensembles(repository: ModelRepository, ensemble: str) -> ModelConfig:
    """``ensemble``'s config with every step that is itself an ensemble replaced by that ensemble's own
    steps (recursively): its inputs and outputs wired to the outer tensors, its inner tensors renamed
    ``NESTED.tensor`` so that they cannot meet the outer ones."""
    config = type(repository[ensemble].config)()
    config.CopyFrom(repository[ensemble].config)
    steps = list(config.ensemble_scheduling.step)
    del config.ensemble_scheduling.step[:]
    for step in steps:
        nested = repository.models.get(step.model_name)
        if nested is None or not nested.is_ensemble or step.model_name == ensemble:
            config.ensemble_scheduling.step.add().CopyFrom(step)
            continue
        outer = {**dict(step.input_map), **dict(step.output_map)}  # nested tensor name -> outer tensor
        for inner in inline_nested_ensembles(repository, step.model_name).ensemble_scheduling.step:
            added = config.ensemble_scheduling.step.add()
            added.CopyFrom(inner)
            for mapping in (added.input_map, added.output_map):
                for key, tensor in list(mapping.items()):
                    mapping[key] = outer.get(tensor, f"{step.model_name}.{tensor}")
    return config


def flattened_repository(model_repository: Path, ensemble: str, target: Path) -> Path:
    """``model_repository`` as Model Analyzer can profile ``ensemble``: at ``target`` (made afresh), the
    ensemble's own directory with nested ensembles inlined, every other model a link to the original.
    Returns ``model_repository`` itself when the ensemble has no nested ensemble."""
    composing_models(model_repository, ensemble)  # a UsageError for a name that is no ensemble here
    repository = ModelRepository.load(model_repository)
    if not any(repository.models[s].is_ensemble for s in repository.steps(ensemble) if s in repository.models):
        return model_repository
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name, model in repository.models.items():
        if name != ensemble:
            (target / name).symlink_to(model.directory.resolve(), target_is_directory=True)
    flat = target / ensemble
    shutil.copytree(repository[ensemble].directory, flat, symlinks=True)
    (flat / CONFIG_FILENAME).write_text(
        "# Written by `triton-vision model-analyzer`: the nested ensembles of "
        f"{repository[ensemble].directory / CONFIG_FILENAME} inlined (Model Analyzer profiles no nested ensemble).\n"
        + text_format.MessageToString(inline_nested_ensembles(repository, ensemble)),
        encoding="utf-8",
    )
    return target


def model_analyzer_config(
    *,
    ensemble: str,
    model_repository: Path,
    input_data: Path,
    workdir: Path,
    host: str = contract.DEFAULT_HOST,
    http_port: int = contract.DEFAULT_HTTP_PORT,
    grpc_port: int = contract.DEFAULT_GRPC_PORT,
    metrics_port: int = contract.DEFAULT_METRICS_PORT,
    max_model_batch_size: int = 4,
    max_instance_count: int = 2,
    concurrency: int | None = None,
    measurement_ms: int = 2000,
) -> dict:
    """A Model Analyzer profile config for ``ensemble`` on a running ``serve --allow-model-control``.

    ``max_model_batch_size`` and ``max_instance_count`` bound the quick search; ``concurrency``
    pins perf_analyzer's concurrency for every measurement (a tiny, bounded search) and turns off
    the final concurrency sweep. Measurements are time windows of ``measurement_ms`` with a loose
    stability criterion (50%, at most 4 windows): a shared CPU is noisy.
    """
    flags: dict[str, object] = {
        "input-data": str(input_data),
        "measurement-mode": "time_windows",
        "measurement-interval": measurement_ms,
        "stability-percentage": 50,
        "max-trials": 4,
    }
    config: dict[str, object] = {
        "model_repository": str(model_repository),
        "triton_launch_mode": "remote",
        "triton_http_endpoint": f"{host}:{http_port}",
        "triton_grpc_endpoint": f"{host}:{grpc_port}",
        "triton_metrics_url": f"http://{host}:{metrics_port}/metrics",
        "client_protocol": "grpc",
        "perf_analyzer_path": str(perf_analyzer_binary()),
        "perf_analyzer_timeout": 300,
        "output_model_repository_path": str(workdir / "output_models"),
        "override_output_model_repository": True,
        "export_path": str(workdir / "results"),
        "checkpoint_directory": str(workdir / "checkpoints"),
        "run_config_search_max_model_batch_size": max_model_batch_size,
        "run_config_search_max_instance_count": max_instance_count,
        "cpu_only_composing_models": composing_models(model_repository, ensemble),
        "profile_models": {ensemble: {"cpu_only": True, "perf_analyzer_flags": flags}},
    }
    if concurrency is not None:
        flags["concurrency-range"] = str(concurrency)
        config["run_config_search_max_concurrency"] = concurrency
        config["concurrency_sweep_disable"] = True
    return config


def write_model_analyzer_config(target: Path, **kwargs) -> Path:
    """Write :func:`model_analyzer_config` to ``target`` (JSON is valid YAML); returns it.

    Creates ``workdir`` (Model Analyzer refuses paths whose parent does not exist).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    Path(kwargs["workdir"]).mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(model_analyzer_config(**kwargs), indent=2))
    return target
