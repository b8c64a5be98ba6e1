"""The one reader of a Triton model repository: configs, model kinds, ensemble steps, model files.

Every tool that needs to know what a repository holds asks this module: ``triton-vision check``,
``serve`` and its supervisor, the bench, ``export-repo``, the Model Analyzer config, the
``model_info`` model, ``add-model`` and the tests. Configs are parsed with Triton's own
protobuf (``tritonclient.grpc.model_config_pb2``); a directory whose config cannot be read is
kept aside in :attr:`ModelRepository.unreadable` with the reason, so one broken model does not
hide the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

import triton_vision_contract as contract

from .errors import ConfigError

# Triton's generated protobuf class carries no type information for mypy: configs are typed Any.
ModelConfig: TypeAlias = Any
new_config = model_config_pb2.ModelConfig

CONFIG_FILENAME = "config.pbtxt"
ENSEMBLE = "ensemble"
PYTHON = "python"
DALI = "dali"
ONNXRUNTIME = "onnxruntime"
# The file each backend loads from a version folder unless ``default_model_filename`` names another.
DEFAULT_MODEL_FILENAMES = {PYTHON: "model.py", DALI: "dali.py", ONNXRUNTIME: "model.onnx"}
# An ensemble served in one process on the local runtime (``serve``'s fused repository): its folder
# holds a config of this backend, and the ensemble's own config under ENSEMBLE_CONFIG_FILE.
FUSED_BACKEND = contract.FUSED_BACKEND
ENSEMBLE_CONFIG_FILE = "ensemble.pbtxt"


# -- one config -----------------------------------------------------------------------------
def parse_config(text: str) -> ModelConfig:
    """``config.pbtxt`` text parsed with Triton's protobuf; :class:`ConfigError` if it cannot be."""
    config = new_config()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ConfigError(f"{CONFIG_FILENAME} does not parse: {exc}") from None
    return config


def load_config(model_dir: Path, filename: str = CONFIG_FILENAME) -> ModelConfig:
    """``model_dir/config.pbtxt`` parsed; :class:`ConfigError` if it is missing or does not parse."""
    try:
        text = (model_dir / filename).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{filename} does not parse: {exc}") from None
    return parse_config(text)


def load_model_config(model_dir: Path) -> ModelConfig:
    """What the model in ``model_dir`` is: its config, or for a fused ensemble the ensemble's."""
    config = load_config(model_dir)
    if config.backend == FUSED_BACKEND and (model_dir / ENSEMBLE_CONFIG_FILE).is_file():
        return load_config(model_dir, ENSEMBLE_CONFIG_FILE)
    return config


def kind_of(config: ModelConfig) -> str:
    """``ensemble``, ``python``, ``dali``, ``onnxruntime`` or the backend/platform as written."""
    if config.platform == "ensemble":
        return ENSEMBLE
    if config.platform == "onnxruntime_onnx" or config.backend == ONNXRUNTIME:
        return ONNXRUNTIME
    return config.backend or config.platform


def dtype_name(dtype: int) -> str:
    return model_config_pb2.DataType.Name(dtype)


def full_shape(config: ModelConfig, tensor: Any, *, in_model: bool = False) -> tuple[int, ...]:
    """A tensor's shape with the batch dimension (-1) when the model batches: as Triton shows it
    (``dims``), or with ``in_model`` as the model itself has it (``reshape`` where the config has one,
    e.g. a per-image scalar: ``dims: [ 1 ] reshape: { shape: [ ] }`` is [batch] in the model file)."""
    dims = tuple(tensor.reshape.shape) if in_model and tensor.HasField("reshape") else tuple(tensor.dims)
    return ((-1,) + dims) if config.max_batch_size > 0 else dims


def tensors_of(config: ModelConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config's inputs and outputs by name."""
    return {i.name: i for i in config.input}, {o.name: o for o in config.output}


def model_dirs(repository: Path) -> list[Path]:
    """Every model directory of a repository (Triton: each subdirectory is a model)."""
    return sorted(p for p in repository.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def version_dirs(model_dir: Path) -> list[Path]:
    """The numbered version folders of a model directory, in version order."""
    return sorted((p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


# -- one model ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RepositoryModel:
    """One model directory whose config parsed."""

    name: str
    directory: Path
    config: ModelConfig = field(repr=False)

    @property
    def kind(self) -> str:
        return kind_of(self.config)

    @property
    def is_ensemble(self) -> bool:
        return self.kind == ENSEMBLE

    @property
    def max_batch_size(self) -> int:
        return int(self.config.max_batch_size)

    @property
    def steps(self) -> tuple[str, ...]:
        """The models an ensemble's steps name, in step order, each once (() for other models)."""
        return tuple(dict.fromkeys(step.model_name for step in self.config.ensemble_scheduling.step))

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(output.name for output in self.config.output)

    @property
    def task(self) -> str | None:
        """An ensemble's task, told by the wire contract its outputs carry (None for other models)."""
        return contract.task_of(self.output_names) if self.is_ensemble else None

    @property
    def versions(self) -> list[Path]:
        return version_dirs(self.directory)

    @property
    def model_filename(self) -> str | None:
        """The file its backend loads from each version folder (None for ensembles and unknown backends)."""
        return self.config.default_model_filename or DEFAULT_MODEL_FILENAMES.get(self.kind)

    def model_files(self) -> list[Path]:
        """The model files present in its version folders."""
        name = self.model_filename
        return [version / name for version in self.versions if name and (version / name).is_file()]

    def setting(self, key: str, default: str = "") -> str:
        """A string parameter of its config (Triton's ``parameters`` map: the model's settings)."""
        value = self.config.parameters.get(key)
        return value.string_value if value is not None and value.string_value != "" else default


# -- the repository -------------------------------------------------------------------------
@dataclass
class ModelRepository:
    """What a model repository holds, read once (see the module docstring)."""

    path: Path
    models: dict[str, RepositoryModel] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)  # directory name -> why its config is unusable

    @classmethod
    def load(cls, path: Path) -> ModelRepository:
        if not path.is_dir():
            raise ConfigError(f"model repository {path} is not a directory")
        repository = cls(path)
        for model_dir in model_dirs(path):
            if not (model_dir / CONFIG_FILENAME).is_file():
                repository.unreadable[model_dir.name] = f"no {CONFIG_FILENAME}"
                continue
            try:
                repository.models[model_dir.name] = RepositoryModel(
                    model_dir.name, model_dir, load_model_config(model_dir)
                )
            except ConfigError as exc:
                repository.unreadable[model_dir.name] = str(exc)
        return repository

    def __contains__(self, name: object) -> bool:
        return name in self.models

    def __iter__(self) -> Iterator[RepositoryModel]:
        return iter(self.models.values())

    def __getitem__(self, name: str) -> RepositoryModel:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none"
            raise ConfigError(f"model '{name}' is not in the repository {self.path} (models: {known})") from None

    @property
    def configs(self) -> dict[str, ModelConfig]:
        return {name: model.config for name, model in self.models.items()}

    @property
    def ensembles(self) -> list[str]:
        """The names of the repository's ensembles that clients call, sorted: those that are no step of
        another ensemble (the cached ``NAME_infer`` part of a generated ensemble is one: see
        :attr:`nested_ensembles`)."""
        nested = set(self.nested_ensembles)
        return sorted(name for name, model in self.models.items() if model.is_ensemble and name not in nested)

    @property
    def cached_ensembles(self) -> list[str]:
        """The models whose config enables Triton's response cache (``response_cache { enable: true }``)."""
        return sorted(name for name, model in self.models.items() if model.config.response_cache.enable)

    @property
    def nested_ensembles(self) -> list[str]:
        """The ensembles that another ensemble of the repository runs as a step, sorted."""
        steps = {step for model in self.models.values() if model.is_ensemble for step in model.steps}
        return sorted(name for name in steps - {None} if name in self.models and self.models[name].is_ensemble)

    def of_kind(self, kind: str) -> list[str]:
        return sorted(name for name, model in self.models.items() if model.kind == kind)

    def steps(self, ensemble: str) -> list[str]:
        """The models an ensemble's steps name, in order ([] when it is no ensemble or not here)."""
        model = self.models.get(ensemble)
        return list(model.steps) if model is not None else []

    def composing_models(self, ensemble: str, *, nested: bool = False) -> list[str]:
        """Every model an ensemble runs, in step order, nested ensembles expanded (``nested``: each
        nested ensemble too, before its own steps)."""
        found: list[str] = []
        for step in self.steps(ensemble):
            model = self.models.get(step)
            if model is not None and model.is_ensemble and step != ensemble:
                inner = self.composing_models(step, nested=nested)
                found.extend(m for m in ([step] if nested else []) + inner if m not in found)
            elif step not in found:
                found.append(step)
        return found

    def ensembles_using(self, model: str) -> list[str]:
        """The ensembles that run ``model`` (directly or through a nested ensemble)."""
        return [name for name in self.ensembles if model in self.composing_models(name)]

    def referenced_models(self, name: str) -> list[str]:
        """The models ``name`` needs besides itself: its ensemble steps, and models whose files its
        string parameters name (``labels: "resnet18/imagenet_labels.txt"``)."""
        model = self[name]
        needed = list(model.steps)
        for value in model.config.parameters.values():
            head = value.string_value.partition("/")[0]
            if head in self.models and head != name and head not in needed:
                needed.append(head)
        return needed

    def closure(self, names: Iterable[str], *, with_model_info: bool = True) -> list[str]:
        """``names`` plus every model they need (see :meth:`referenced_models`), and ``model_info``
        (clients ask it what the model files are) when an ensemble is among them."""
        selected: list[str] = []
        pending = list(names)
        while pending:
            name = pending.pop(0)
            if name in selected:
                continue
            selected.append(name)
            pending.extend(self.referenced_models(name))
            if with_model_info and self[name].is_ensemble and contract.MODEL_INFO in self.models:
                pending.append(contract.MODEL_INFO)
        return selected
