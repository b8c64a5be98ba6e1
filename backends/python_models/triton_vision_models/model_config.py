"""Typed views of what Triton hands a Python model: its config and its requests.

Built from ``args`` in ``initialize`` once; pure Python/NumPy, no Triton import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, InvalidInputError

# Triton's config data types and the NumPy dtype each travels as.
TRITON_TO_NUMPY: dict[str, np.dtype] = {
    "TYPE_BOOL": np.dtype(np.bool_),
    "TYPE_UINT8": np.dtype(np.uint8),
    "TYPE_UINT16": np.dtype(np.uint16),
    "TYPE_UINT32": np.dtype(np.uint32),
    "TYPE_UINT64": np.dtype(np.uint64),
    "TYPE_INT8": np.dtype(np.int8),
    "TYPE_INT16": np.dtype(np.int16),
    "TYPE_INT32": np.dtype(np.int32),
    "TYPE_INT64": np.dtype(np.int64),
    "TYPE_FP16": np.dtype(np.float16),
    "TYPE_FP32": np.dtype(np.float32),
    "TYPE_FP64": np.dtype(np.float64),
    "TYPE_STRING": np.dtype(np.object_),
}


@dataclass(frozen=True)
class TensorConfig:
    """One input or output of a model config; ``dims`` exclude the batch dimension."""

    name: str
    dtype: np.dtype
    dims: tuple[int, ...]

    @classmethod
    def from_entry(cls, model: str, entry: Mapping[str, Any]) -> TensorConfig:
        type_name = entry.get("data_type", "")
        if type_name not in TRITON_TO_NUMPY:
            raise ConfigError(f"model '{model}': tensor '{entry.get('name')}' has unsupported data_type '{type_name}'")
        dims = tuple(int(d) for d in entry.get("dims", []))
        if "reshape" in entry and entry["reshape"].get("shape") is not None:
            dims = tuple(int(d) for d in entry["reshape"]["shape"])
        return cls(name=entry["name"], dtype=TRITON_TO_NUMPY[type_name], dims=dims)


@dataclass(frozen=True)
class ModelConfig:
    """What a Python model needs to know about itself, derived from Triton's ``args``."""

    name: str
    repository_dir: Path  # the model's own directory: <model_repository>/<name>
    version_dir: Path  # <model_repository>/<name>/<version>
    max_batch_size: int
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    parameters: Mapping[str, str] = field(default_factory=dict)
    instance_kind: str = "KIND_CPU"
    device_id: int | None = None
    default_model_filename: str = ""
    # optimization { graph { level } } (Triton's ONNX Runtime backend reads it); None when absent.
    graph_optimization_level: int | None = None

    @classmethod
    def from_triton_args(cls, args: Mapping[str, str]) -> ModelConfig:
        config = json.loads(args["model_config"])
        name = config.get("name") or args.get("model_name", "")
        model_dir = Path(args["model_repository"])
        inputs = tuple(TensorConfig.from_entry(name, e) for e in config.get("input", []))
        outputs = tuple(TensorConfig.from_entry(name, e) for e in config.get("output", []))
        parameters = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
        kind = args.get("model_instance_kind", "CPU")
        device = args.get("model_instance_device_id")
        graph = config.get("optimization", {}).get("graph", {})
        return cls(
            name=name,
            repository_dir=model_dir,
            version_dir=model_dir / str(args["model_version"]),
            max_batch_size=int(config.get("max_batch_size", 0)),
            inputs=inputs,
            outputs=outputs,
            parameters=parameters,
            instance_kind="KIND_GPU" if kind.upper().endswith("GPU") else "KIND_CPU",
            device_id=int(device) if (device is not None and kind.upper().endswith("GPU")) else None,
            default_model_filename=config.get("default_model_filename", ""),
            graph_optimization_level=int(graph["level"]) if "level" in graph else None,
        )

    # A model's settings are its config's ``parameters`` (strings); a request's parameters (top_k,
    # score_threshold, ...) are another thing, checked by :mod:`.parameters`.
    def setting(self, key: str, default: str) -> str:
        value = self.parameters.get(key, "")
        return value if value != "" else default

    def int_setting(self, key: str, default: int) -> int:
        raw = self.setting(key, str(default))
        try:
            return int(raw)
        except ValueError as exc:
            raise ConfigError(f"model '{self.name}': parameter '{key}' must be an integer, got '{raw}'") from exc

    def float_setting(self, key: str, default: float) -> float:
        raw = self.setting(key, str(default))
        try:
            return float(raw)
        except ValueError as exc:
            raise ConfigError(f"model '{self.name}': parameter '{key}' must be a number, got '{raw}'") from exc

    def input(self, name: str) -> TensorConfig:
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor
        raise ConfigError(f"model '{self.name}': config has no input '{name}' (has {[s.name for s in self.inputs]})")

    def output(self, name: str) -> TensorConfig:
        for tensor in self.outputs:
            if tensor.name == name:
                return tensor
        raise ConfigError(f"model '{self.name}': config has no output '{name}' (has {[s.name for s in self.outputs]})")

    @property
    def batched(self) -> bool:
        return self.max_batch_size > 0


@dataclass(frozen=True)
class RequestData:
    """One request's input arrays and its parameters, as plain Python/NumPy."""

    inputs: Mapping[str, np.ndarray]
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def batch_size(self, config: ModelConfig) -> int:
        if not config.batched or not self.inputs:
            return 1
        return int(next(iter(self.inputs.values())).shape[0])


def check_input(config: ModelConfig, tensor: TensorConfig, array: np.ndarray) -> None:
    """Raise :class:`InvalidInputError` unless ``array`` fits ``tensor`` of model ``config``."""
    expected_rank = len(tensor.dims) + (1 if config.batched else 0)
    where = f"model '{config.name}', input '{tensor.name}'"
    if tensor.dtype != np.dtype(np.object_) and array.dtype != tensor.dtype:
        raise InvalidInputError(f"{where}: expected dtype {tensor.dtype.name}, got {array.dtype.name}")
    if array.ndim != expected_rank:
        raise InvalidInputError(f"{where}: expected rank {expected_rank}, got shape {list(array.shape)}")
    if array.size == 0:
        raise InvalidInputError(f"{where}: empty tensor (shape {list(array.shape)})")
    if config.batched and array.shape[0] > config.max_batch_size:
        raise InvalidInputError(f"{where}: batch of {array.shape[0]} is above max_batch_size {config.max_batch_size}")
    inner = array.shape[1:] if config.batched else array.shape
    for axis, (want, got) in enumerate(zip(tensor.dims, inner, strict=True)):
        if want >= 0 and want != got:
            raise InvalidInputError(f"{where}: expected dims {list(tensor.dims)}, got {list(inner)} (axis {axis})")
