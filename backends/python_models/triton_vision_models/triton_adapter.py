"""The one place that speaks Triton's Python backend API.

It turns requests into :class:`RequestData`, hands them to a pure *runner* (a callable
from a list of requests to a list of output dicts, or of exceptions for requests it refuses),
turns results into responses and project errors into per-request ``TritonError``s. When a batch made of several requests
fails, each request is run again on its own, so one bad request fails alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from .errors import ImageRejectedError, InferenceError, InvalidInputError, InvalidParameterError, TritonVisionError
from .model_config import ModelConfig, RequestData, check_input

Runner = Callable[[Sequence[RequestData]], Sequence["Mapping[str, np.ndarray] | Exception"]]

# Requests a model answered with an error, by reason, on Triton's metrics endpoint beside its own
# counters (which count such a response as a success: the error travels in the response).
ERRORS_METRIC = "triton_vision_request_errors_total"
ERROR_REASONS = ("image", "parameter", "input", "internal")


def error_reason(exc: BaseException) -> str:
    """The ``reason`` label of :data:`ERRORS_METRIC` for the error a request was answered with."""
    if isinstance(exc, ImageRejectedError):
        return "image"
    if isinstance(exc, InvalidParameterError):
        return "parameter"
    if isinstance(exc, InvalidInputError):
        return "input"
    return "internal"


class ErrorCounter:
    """:data:`ERRORS_METRIC` for one model, every reason present from the start (at 0)."""

    def __init__(self, model: str) -> None:
        self.metrics: dict[str, Any] = {}
        self.family: Any = None  # kept while its metrics live: Triton refuses a metric whose family was deleted
        family_type = getattr(pb_utils, "MetricFamily", None)
        if family_type is None:  # a Python backend without custom metrics
            return
        try:
            self.family = family = family_type(
                name=ERRORS_METRIC,
                description="Requests answered with an error by a triton-vision Python model, by reason",
                kind=family_type.COUNTER,
            )
            self.metrics = {r: family.Metric(labels={"model": model, "reason": r}) for r in ERROR_REASONS}
        except Exception as exc:  # noqa: BLE001 - metrics disabled in this server: the model serves without
            pb_utils.Logger.log_warn(f"model '{model}': no {ERRORS_METRIC} ({exc})")

    def count(self, exc: BaseException) -> None:
        metric = self.metrics.get(error_reason(exc))
        if metric is not None:
            try:
                metric.increment(1)
            except Exception as failure:  # noqa: BLE001 - a metric never fails the request it counts
                pb_utils.Logger.log_warn(f"{ERRORS_METRIC}: {failure}")


def forget_frames(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and the exceptions chained to it. A refused request's exception is
    kept in the runner's result list, and its traceback holds the frames that hold that list and the
    request's arrays: a reference cycle that kept a refused request's input (a private copy in this
    process) alive until the garbage collector ran, minutes later in an idle model."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        todo += [current.__cause__, current.__context__]


def request_parameters(request: Any) -> dict[str, Any]:
    raw = request.parameters()
    if not raw:
        return {}
    parsed = json.loads(raw) if isinstance(raw, str) else dict(raw)
    return parsed if isinstance(parsed, dict) else {}


def bls_infer(
    model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str], parameters: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """One request to another model of the server (Triton's business logic scripting), its outputs as
    arrays: :class:`InvalidInputError` when that model refused the request as invalid (INVALID_ARG), an
    :class:`InferenceError` with its message for any other failure (busy, failed, not loaded)."""
    request = pb_utils.InferenceRequest(
        model_name=model,
        inputs=[pb_utils.Tensor(name, np.ascontiguousarray(value)) for name, value in inputs.items()],
        requested_output_names=list(outputs),
        parameters=dict(parameters),
    )
    response = request.exec()
    if response.has_error():
        error = response.error()
        invalid = error.code() == pb_utils.TritonError.INVALID_ARG
        raise (InvalidInputError if invalid else InferenceError)(error.message())
    return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}


class TritonModelAdapter:
    """Maps Triton requests to a pure runner and back, one response per request."""

    def __init__(self, config: ModelConfig, runner: Runner, *, validate_inputs: bool = True) -> None:
        self.config = config
        self.runner = runner
        self.validate_inputs = validate_inputs
        self.logger = pb_utils.Logger
        self._output_dtypes = {out.name: out.dtype for out in config.outputs}
        self.errors = ErrorCounter(config.name)

    # -- requests -> RequestData ------------------------------------------------------
    def read(self, request: Any) -> RequestData:
        inputs: dict[str, np.ndarray] = {}
        for tensor in self.config.inputs:
            value = pb_utils.get_input_tensor_by_name(request, tensor.name)
            if value is None:
                raise InvalidInputError(f"model '{self.config.name}': request has no input '{tensor.name}'")
            array = value.as_numpy()
            if self.validate_inputs:
                check_input(self.config, tensor, array)
            inputs[tensor.name] = array
        return RequestData(inputs=inputs, parameters=request_parameters(request))

    # -- outputs -> responses ---------------------------------------------------------
    def respond(self, outputs: Mapping[str, np.ndarray]) -> Any:
        tensors = []
        for name, array in outputs.items():
            dtype = self._output_dtypes.get(name)
            if dtype is not None and dtype != np.dtype(np.object_) and array.dtype != dtype:
                array = array.astype(dtype)
            tensors.append(pb_utils.Tensor(name, np.ascontiguousarray(array)))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def error(self, exc: BaseException) -> Any:
        forget_frames(exc)
        self.errors.count(exc)
        if isinstance(exc, InvalidInputError):
            code = pb_utils.TritonError.INVALID_ARG
            message = str(exc)
        elif isinstance(exc, TritonVisionError):
            code = pb_utils.TritonError.INTERNAL
            message = str(exc)
        else:
            code = pb_utils.TritonError.INTERNAL
            message = f"model '{self.config.name}': {type(exc).__name__}: {exc}"
            self.logger.log_error(message)
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))

    # -- execute ----------------------------------------------------------------------
    def execute(self, requests: Sequence[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        ready: list[tuple[int, RequestData]] = []
        for index, request in enumerate(requests):
            try:
                ready.append((index, self.read(request)))
            except Exception as exc:  # noqa: BLE001 - a request that cannot be read fails alone
                responses[index] = self.error(exc)
        self._run(ready, responses)
        return responses

    def _run(self, items: list[tuple[int, RequestData]], responses: list[Any]) -> None:
        if not items:
            return
        try:
            results = self.runner([data for _, data in items])
        except Exception as exc:  # noqa: BLE001 - every failure becomes a response, never a crash
            if len(items) > 1:
                # Isolate: a batch that fails is retried request by request.
                for item in items:
                    self._run([item], responses)
                return
            responses[items[0][0]] = self.error(exc)
            return
        for (index, _), outputs in zip(items, results, strict=True):
            responses[index] = self.error(outputs) if isinstance(outputs, Exception) else self.respond(outputs)


def python_model(load_runner: Callable[[ModelConfig], Runner], *, validate_inputs: bool = True) -> type:
    """A ``TritonPythonModel`` class whose runner ``load_runner(config)`` builds in ``initialize``.

    ``validate_inputs=False`` is for runners that check their inputs themselves (e.g. ones that
    accept legitimately empty tensors, such as zero detections).
    """

    class TritonPythonModel:
        def initialize(self, args: Mapping[str, str]) -> None:
            config = ModelConfig.from_triton_args(args)
            self.adapter = TritonModelAdapter(config, load_runner(config), validate_inputs=validate_inputs)

        def execute(self, requests: Sequence[Any]) -> list[Any]:
            return self.adapter.execute(requests)

    # what a fused ensemble (:mod:`.fused`) loads to run this model inside its own process
    TritonPythonModel.load_runner = staticmethod(load_runner)  # type: ignore[attr-defined]
    TritonPythonModel.validate_inputs = validate_inputs  # type: ignore[attr-defined]
    return TritonPythonModel
