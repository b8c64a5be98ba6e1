"""A stand-in for Triton's ``triton_python_backend_utils``, for unit tests of the adapter only.

It models what the adapter uses: input lookup by name, tensors, responses, errors and the logger.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np


class Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name = name
        self._array = array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class TritonError:
    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS = range(7)

    def __init__(self, message: str, code: int = 1) -> None:
        self._message = message
        self._code = code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code


class InferenceResponse:
    def __init__(self, output_tensors: list[Tensor], error: TritonError | None = None) -> None:
        self.output_tensors = output_tensors
        self.error = error

    def has_error(self) -> bool:
        return self.error is not None

    def outputs(self) -> dict[str, np.ndarray]:
        return {tensor.name(): tensor.as_numpy() for tensor in self.output_tensors}


class Logger:
    messages: list[tuple[str, str]] = []

    @classmethod
    def log_error(cls, message: str) -> None:
        cls.messages.append(("error", message))

    @classmethod
    def log_warn(cls, message: str) -> None:
        cls.messages.append(("warn", message))

    @classmethod
    def log_info(cls, message: str) -> None:
        cls.messages.append(("info", message))


class MetricFamily:
    """Custom metrics as the Python backend offers them; every family's metrics' values, by labels."""

    COUNTER, GAUGE = "counter", "gauge"
    values: dict[tuple[str, tuple], float] = {}

    def __init__(self, name: str, description: str, kind: str) -> None:
        self.name = name

    def Metric(self, labels: Mapping[str, str]) -> Metric:  # noqa: N802 - the backend's name
        return Metric(self.name, tuple(sorted(labels.items())))


class Metric:
    def __init__(self, family: str, labels: tuple) -> None:
        self.key = (family, labels)
        MetricFamily.values.setdefault(self.key, 0.0)

    def increment(self, value: float) -> None:
        MetricFamily.values[self.key] += value


class Request:
    """A request as the Python backend hands it over: named inputs and JSON parameters."""

    def __init__(self, inputs: Mapping[str, np.ndarray], parameters: Any = None) -> None:
        self.inputs = {name: Tensor(name, array) for name, array in inputs.items()}
        self._parameters = parameters if isinstance(parameters, str) else json.dumps(parameters or {})

    def parameters(self) -> str:
        return self._parameters


def get_input_tensor_by_name(request: Request, name: str) -> Tensor | None:
    return request.inputs.get(name)


@contextmanager
def installed() -> Iterator[types.ModuleType]:
    """This module as ``triton_python_backend_utils`` while the block runs."""
    previous = sys.modules.get("triton_python_backend_utils")
    sys.modules["triton_python_backend_utils"] = sys.modules[__name__]
    try:
        yield sys.modules[__name__]
    finally:
        if previous is None:
            del sys.modules["triton_python_backend_utils"]
        else:
            sys.modules["triton_python_backend_utils"] = previous
