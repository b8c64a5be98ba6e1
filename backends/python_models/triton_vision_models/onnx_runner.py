"""Run an ONNX model for a list of requests, batching those whose shapes agree.

The session is made from the config as Triton's native ONNX Runtime backend makes it
(:func:`session_settings`). Two settings are this (local) backend's own, and the native one ignores
them: ONNX Runtime's spinning (:data:`SPINNING_KEYS`) and ``idle_intra_op_thread_count``, a second
session with more intra-op threads used for an execution while the CPUs are calm
(:mod:`.cpu_pressure`): at one request at a time a batch of one then runs on every core, and under
load each instance runs its batch on one thread, without the waits of a parallel section whose
threads share the cores with the other steps (docs/performance.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .cpu_pressure import CpuPressure
from .errors import ConfigError, ModelFileError
from .model_config import ModelConfig, RequestData

DEFAULT_MODEL_FILENAME = "model.onnx"
# Triton's ONNX Runtime backend maps optimization { graph { level } } so: -1 basic, 1 extended,
# 2 none; absent or any other value: all (its src/onnxruntime.cc, ModelState::ModelState).
GRAPH_LEVELS = {-1: "ORT_ENABLE_BASIC", 1: "ORT_ENABLE_EXTENDED", 2: "ORT_DISABLE_ALL"}
DEFAULT_GRAPH_LEVEL = "ORT_ENABLE_ALL"


# Triton's ParseBoolValue (backend_common.cc), which the native backend applies to enable_mem_arena
# and enable_mem_pattern: case-insensitive true/on/1 and false/off/0, anything else refused.
TRUE_WORDS = ("true", "on", "1")
FALSE_WORDS = ("false", "off", "0")
# ONNX Runtime session config entries a config may set as parameters of the same name. ORT itself
# treats any value other than "1" as "0"; both are the only values taken here. Triton's native
# backend (r24.10 and later) reads none of them: there its thread pools spin (ORT's default).
SPINNING_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


def parse_bool(config: ModelConfig, key: str) -> bool | None:
    """A boolean parameter as Triton's ``ParseBoolValue`` reads it; None when the config has none."""
    raw = config.parameters.get(key)
    if raw is None:
        return None
    word = raw.lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ConfigError(f"model '{config.name}': parameter '{key}' must be true or false (or on/off, 1/0), got '{raw}'")


def config_entries(config: ModelConfig) -> dict[str, str]:
    """The session config entries among the config's parameters (:data:`SPINNING_KEYS`)."""
    entries = {}
    for key in SPINNING_KEYS:
        raw = config.parameters.get(key)
        if raw is None:
            continue
        if raw not in ("0", "1"):
            raise ConfigError(f"model '{config.name}': parameter '{key}' must be \"0\" or \"1\", got '{raw}'")
        entries[key] = raw
    return entries


def session_settings(config: ModelConfig) -> dict[str, Any]:
    """The ONNX Runtime session settings a config asks for, with the native backend's names and meaning.

    ``parameters``: ``intra_op_thread_count`` and ``inter_op_thread_count`` (0 or absent: ONNX
    Runtime's default, one per physical core), ``execution_mode`` (0 sequential, 1 parallel; anything
    else is refused, as the native backend does), ``enable_mem_arena`` and ``enable_mem_pattern``
    (booleans, :func:`parse_bool`; absent: ORT's default, on); ``optimization { graph { level } }``:
    see :data:`GRAPH_LEVELS`. Local only (the native backend ignores them): :data:`SPINNING_KEYS`.
    """
    intra = config.int_setting("intra_op_thread_count", 0)
    inter = config.int_setting("inter_op_thread_count", 0)
    mode = config.int_setting("execution_mode", 0)
    if mode not in (0, 1):
        raise ConfigError(f"model '{config.name}': parameter 'execution_mode' must be 0 or 1, got {mode}")
    if intra < 0 or inter < 0:
        raise ConfigError(f"model '{config.name}': thread counts must be >= 0, got intra {intra}, inter {inter}")
    level = config.graph_optimization_level
    settings: dict[str, Any] = {
        "intra_op_num_threads": intra,
        "inter_op_num_threads": inter,
        "execution_mode": "ORT_PARALLEL" if mode == 1 else "ORT_SEQUENTIAL",
        "graph_optimization_level": GRAPH_LEVELS.get(level, DEFAULT_GRAPH_LEVEL)
        if level is not None
        else DEFAULT_GRAPH_LEVEL,
    }
    for key, attribute in (("enable_mem_arena", "enable_cpu_mem_arena"), ("enable_mem_pattern", "enable_mem_pattern")):
        value = parse_bool(config, key)
        if value is not None:
            settings[attribute] = value
    entries = config_entries(config)
    if entries:
        settings["config_entries"] = entries
    return settings


def session_options(config: ModelConfig):
    """An ``onnxruntime.SessionOptions`` made from :func:`session_settings`."""
    import onnxruntime as ort

    settings = session_settings(config)
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings["intra_op_num_threads"]
    options.inter_op_num_threads = settings["inter_op_num_threads"]
    options.execution_mode = getattr(ort.ExecutionMode, settings["execution_mode"])
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, settings["graph_optimization_level"])
    for attribute in ("enable_cpu_mem_arena", "enable_mem_pattern"):
        if attribute in settings:
            setattr(options, attribute, settings[attribute])
    for key, value in settings.get("config_entries", {}).items():
        options.add_session_config_entry(key, value)
    return options


IDLE_THREADS_KEY = "idle_intra_op_thread_count"


def idle_options(config: ModelConfig):
    """The options of the calm-CPU session: the config's, with ``idle_intra_op_thread_count`` intra-op
    threads (0: one per core); None when the config has no such parameter."""
    raw = config.parameters.get(IDLE_THREADS_KEY)
    if raw is None:
        return None
    threads = config.int_setting(IDLE_THREADS_KEY, 0)
    if threads < 0:
        raise ConfigError(f"model '{config.name}': parameter '{IDLE_THREADS_KEY}' must be >= 0, got {threads}")
    options = session_options(config)
    options.intra_op_num_threads = threads
    return options


def model_path(config: ModelConfig) -> Path:
    return config.version_dir / (config.default_model_filename or DEFAULT_MODEL_FILENAME)


DEFAULT_ARENA_SHRINK_ABOVE_BATCH = 8


class OnnxRunner:
    """A pure runner (see :mod:`triton_adapter`) around one ONNX Runtime session (and the calm-CPU
    one, :func:`idle_options`)."""

    def __init__(self, config: ModelConfig, session, idle_session=None) -> None:  # onnxruntime.InferenceSession
        self.config = config
        self.session = session
        model_inputs = {i.name for i in session.get_inputs()}
        model_outputs = {o.name for o in session.get_outputs()}
        for tensor in config.inputs:
            if tensor.name not in model_inputs:
                raise ModelFileError(
                    f"model '{config.name}': config input '{tensor.name}' is not an input of the ONNX file "
                    f"(it has {sorted(model_inputs)})"
                )
        for tensor in config.outputs:
            if tensor.name not in model_outputs:
                raise ModelFileError(
                    f"model '{config.name}': config output '{tensor.name}' is not an output of the ONNX file "
                    f"(it has {sorted(model_outputs)})"
                )
        self.output_names = [tensor.name for tensor in config.outputs]
        self.arena_shrink_above = config.int_setting("arena_shrink_above_batch", DEFAULT_ARENA_SHRINK_ABOVE_BATCH)
        self.idle_session = idle_session
        self.idle_runs = 0  # executions that ran on idle_session (read by tests)
        self.contention = CpuPressure()

    @classmethod
    def from_config(cls, config: ModelConfig) -> OnnxRunner:
        """Load the version folder's ONNX file with the config's :func:`session_settings`."""
        import onnxruntime as ort

        options = session_options(config)
        path = model_path(config)
        if not path.is_file():
            raise ModelFileError(
                f"model '{config.name}': {path.name} is missing from {path.parent}; "
                "run `triton-vision models prepare` first"
            )
        providers: list = ["CPUExecutionProvider"]
        if config.instance_kind == "KIND_GPU" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": config.device_id or 0}))
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        idle = idle_options(config) if len(providers) == 1 else None  # CPU threads only matter on the CPU
        idle_session = (
            ort.InferenceSession(str(path), sess_options=idle, providers=providers) if idle is not None else None
        )
        return cls(config, session, idle_session)

    def run_batch(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        options = self._run_options(inputs)
        session = self.session
        if self.idle_session is not None and self.contention.calm():
            session = self.idle_session
            self.idle_runs += 1
        if options is None:
            results = session.run(self.output_names, dict(inputs))
        else:
            results = session.run(self.output_names, dict(inputs), options)
        return dict(zip(self.output_names, results, strict=True))

    def _run_options(self, inputs: Mapping[str, np.ndarray]):
        """After a batch above ``arena_shrink_above_batch`` rows, ONNX Runtime hands the arena
        memory it grew for it back (it otherwise keeps the largest batch's working set: ~170 MB
        per ResNet-18 instance at 32 images)."""
        rows = max((int(a.shape[0]) for a in inputs.values() if a.ndim), default=0) if self.config.batched else 0
        if rows <= self.arena_shrink_above:
            return None
        import onnxruntime as ort

        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        return options

    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray]]:
        if not self.config.batched:
            return [self.run_batch(request.inputs) for request in requests]
        # Requests whose non-batch shapes agree run as one batch.
        groups: dict[tuple, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            key = tuple((name, array.shape[1:]) for name, array in sorted(request.inputs.items()))
            groups[key].append(index)
        results: list[dict[str, np.ndarray]] = [{} for _ in requests]
        for members in self._chunks(requests, groups.values()):
            names = list(requests[members[0]].inputs)
            if len(members) == 1:  # one request: its own arrays, not a copy
                batch = dict(requests[members[0]].inputs)
            else:
                batch = {name: np.concatenate([requests[i].inputs[name] for i in members]) for name in names}
            outputs = self.run_batch(batch)
            sizes = [requests[i].batch_size(self.config) for i in members]
            offsets = np.cumsum([0, *sizes])
            for slot, index in enumerate(members):
                start, stop = offsets[slot], offsets[slot + 1]
                results[index] = {name: value[start:stop] for name, value in outputs.items()}
        return results

    def _chunks(self, requests: Sequence[RequestData], groups) -> list[list[int]]:
        """Split each group so that no batch exceeds max_batch_size (e.g. 1 for a traced detector)."""
        chunks: list[list[int]] = []
        for members in groups:
            current: list[int] = []
            size = 0
            for index in members:
                rows = requests[index].batch_size(self.config)
                if current and size + rows > self.config.max_batch_size:
                    chunks.append(current)
                    current, size = [], 0
                current.append(index)
                size += rows
            chunks.append(current)
        return chunks
