"""One page request end to end: which ensembles, then one image through one ensemble, timed.

Every image travels in a request of its own, so a refused image fails alone and its neighbours
still get their answers. Requests to Triton go one at a time: the statistics deltas then hold
this UI's own request only, and are labelled approximate when another client's requests ran in
between.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import triton_vision_contract as contract
from triton_vision_client.answers import split_embeddings, split_instances, split_keypoints
from triton_vision_client.client import (
    DEFAULT_URLS,
    VisionClient,
    split_classifications,
    split_detections,
    split_pipeline,
)
from triton_vision_client.errors import ClientError, ServerUnreachableError
from triton_vision_client.jobs import MAX_FILE_BYTES
from triton_vision_client.segmentation import split_outputs
from triton_vision_client.survey import prefix_hint

from . import render
from .discovery import EnsembleInfo, guard_max_bytes
from .server_info import ServerAnswerError, TritonReader
from .timing import Timing, counters, step_times, unsettled

# Triton may count a step's request a moment after the answer left: read again, a bounded number of times.
SETTLE_READS = 10
SETTLE_PAUSE_S = 0.02
CLIENT_LIMIT = "the UI's own limit (no step of this ensemble declares max_bytes)"


class PlaygroundError(ClientError):
    """A page request that cannot be answered; ``status`` is the HTTP status the page gets."""

    status = 400


class UnknownEnsembleError(PlaygroundError):
    status = 404


class TooLargeError(PlaygroundError):
    status = 413


class AnswerError(PlaygroundError):
    """The server refused or failed the request: the message is the server's."""

    status = 422


@dataclass(frozen=True)
class Limit:
    max_bytes: int
    source: str  # which step's max_bytes parameter, or CLIENT_LIMIT

    def refusal(self, size: int) -> str:
        return f"{size} bytes is above the limit of {self.max_bytes} bytes ({self.source}): not sent"


def _whole(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise PlaygroundError(f"{name} must be a whole number, got '{text}'") from None

    return parse


def _fraction(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise PlaygroundError(f"{contract.SCORE_THRESHOLD} must be a number, got '{text}'") from None


# Per task: the request parameters the page may set (the server checks their ranges), how to read
# the outputs, and how the page shows them.
PARAMETERS: dict[str, dict[str, Callable[[str], Any]]] = {
    contract.CLASSIFICATION: {contract.TOP_K: _whole(contract.TOP_K)},
    contract.DETECTION: {contract.SCORE_THRESHOLD: _fraction, contract.MAX_DETECTIONS: _whole(contract.MAX_DETECTIONS)},
    contract.SEGMENTATION: {},
    contract.PIPELINE: {contract.SCORE_THRESHOLD: _fraction, contract.TOP_K: _whole(contract.TOP_K)},
    contract.EMBEDDING: {},
}
# The tasks whose answers are detections take detection's parameters and are drawn like it.
for _task in (contract.INSTANCE_SEGMENTATION, contract.KEYPOINT_TASK):
    PARAMETERS[_task] = PARAMETERS[contract.DETECTION]
FIXED_PARAMETERS: dict[str, dict[str, Any]] = {contract.SEGMENTATION: {contract.OVERLAY_PARAMETER: False}}
SPLIT: dict[str, Callable[[Mapping[str, Any]], list[Any]]] = {
    contract.CLASSIFICATION: split_classifications,
    contract.DETECTION: split_detections,
    contract.SEGMENTATION: split_outputs,
    contract.PIPELINE: split_pipeline,
    contract.EMBEDDING: split_embeddings,
    contract.INSTANCE_SEGMENTATION: split_instances,
    contract.KEYPOINT_TASK: split_keypoints,
}
VIEWS: dict[str, Callable[[bytes, Any], dict[str, Any]]] = {
    contract.CLASSIFICATION: lambda _data, answer: render.classification_view(answer),
    contract.DETECTION: render.detection_view,
    contract.SEGMENTATION: lambda _data, answer: render.segmentation_view(answer),
    contract.PIPELINE: render.detection_view,
    contract.EMBEDDING: lambda _data, answer: render.embedding_view(answer),
    contract.INSTANCE_SEGMENTATION: render.instances_view,
    contract.KEYPOINT_TASK: render.keypoints_view,
}
DEFAULTS = {
    contract.TOP_K: contract.DEFAULT_TOP_K,
    contract.SCORE_THRESHOLD: contract.DEFAULT_SCORE_THRESHOLD,
    contract.MAX_DETECTIONS: contract.DEFAULT_MAX_DETECTIONS,
}


def request_parameters(task: str, given: Mapping[str, str]) -> dict[str, Any]:
    """The task's parameters among ``given`` (the page's query), parsed; others are ignored."""
    parsed = {name: parse(given[name]) for name, parse in PARAMETERS[task].items() if given.get(name, "") != ""}
    return {**FIXED_PARAMETERS.get(task, {}), **parsed}


class Playground:
    """The UI's side of the server: discovery, limits, and one image through one ensemble.

    Every call to Triton runs on one worker thread of its own, where the connections live (the
    HTTP client cannot be shared between threads), one at a time: the statistics deltas then hold
    this UI's request only, unless another client's requests ran meanwhile (they say so). The
    public methods may be called from any thread.
    """

    def __init__(self, url: str | None, protocol: str = "grpc", *, model_prefix: str = "", timeout_s: float = 120.0):
        self.url = url or DEFAULT_URLS[protocol]
        self.protocol = protocol
        self._settings = (model_prefix, timeout_s)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triton-vision-ui")
        self._connections: tuple[VisionClient, TritonReader] | None = None
        self._known: dict[str, tuple[EnsembleInfo, Limit]] = {}
        self._advice: str | None = None  # what to give when the server has ensembles under another prefix only

    def _on_worker(self, call: Callable[..., Any], *args: Any) -> Any:
        return self._worker.submit(self._forgetting_unreachable, call, *args).result()

    def _forgetting_unreachable(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call``; a server that does not answer closes the connections, so the next call connects
        afresh: a gRPC channel that failed keeps failing at once for its reconnect back-off (growing
        to 120 s), and a page opened before tritonserver listened was seen to wait 25 s to 3 min
        after the server was up."""
        try:
            return call(*args)
        except ServerUnreachableError:
            self._close_connections()
            raise

    def _close_connections(self) -> None:
        connections, self._connections = self._connections, None
        for connection in connections or ():
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - a connection that failed may fail to close too: it is dropped anyway
                pass

    def _connected(self) -> tuple[VisionClient, TritonReader]:
        """The client and the reader (made on the worker thread, at its first call)."""
        if self._connections is None:
            model_prefix, timeout_s = self._settings
            client = VisionClient(self.url, self.protocol, timeout_s=timeout_s, model_prefix=model_prefix)
            self._connections = (client, TritonReader(self.url, self.protocol, timeout_s=min(timeout_s, 30.0)))
        return self._connections

    def close(self) -> None:
        self._on_worker(self._close_connections)
        self._worker.shutdown(wait=True)

    def check_live(self) -> None:
        """Raise :class:`ServerUnreachableError` unless the server answers."""
        self._on_worker(lambda: self._connected()[1].check_live())

    # -- discovery -------------------------------------------------------------------------------
    def _limit(self, reader: TritonReader, info: EnsembleInfo) -> Limit:
        configs = {}
        for step in info.steps:
            try:
                configs[step] = reader.config(step)
            except ServerAnswerError:
                continue
        found = guard_max_bytes(configs)
        if found is None:
            return Limit(MAX_FILE_BYTES, CLIENT_LIMIT)
        step, max_bytes = found
        return Limit(max_bytes, f"the '{step}' step's max_bytes")

    def _discover(self) -> None:
        client, reader = self._connected()
        reader.check_live()
        self._known = {info.name: (info, self._limit(reader, info)) for info in client.ensembles()}
        self._advice = None if self._known else prefix_hint(client)

    def overview(self) -> dict[str, Any]:
        """The server, its ensembles (task, readiness, stand-ins, upload limit) and the defaults;
        with no ensemble, ``advice`` where it has some under another model prefix."""
        self._on_worker(self._discover)
        found = {
            "server": {"url": self.url, "protocol": self.protocol},
            "ensembles": [
                {**info.as_dict(), "max_bytes": limit.max_bytes, "limit_source": limit.source}
                for info, limit in self._known.values()
            ],
            "defaults": DEFAULTS,
        }
        return {**found, "advice": self._advice} if self._advice else found

    def ensemble(self, name: str) -> tuple[EnsembleInfo, Limit]:
        if name not in self._known:
            self._on_worker(self._discover)
        if name not in self._known:
            raise UnknownEnsembleError(f"the server at {self.url} has no ensemble '{name}'")
        return self._known[name]

    def upload_limit(self, name: str) -> Limit:
        return self.ensemble(name)[1]

    # -- one image ---------------------------------------------------------------------------------
    def _statistics(self, reader: TritonReader) -> tuple[dict | None, str | None]:
        try:
            return counters(reader.statistics()), None
        except ServerAnswerError as exc:
            return None, str(exc)

    def _timed_infer(self, info: EnsembleInfo, task: str, data: bytes, parameters: Mapping[str, Any]):
        """On the worker: statistics, the request, statistics again until every step counted it."""
        client, reader = self._connected()
        before, problem = self._statistics(reader)
        start = time.perf_counter()
        asked = contract.outputs_to_ask(task, client.outputs_of(info.name))
        outputs = client.infer(info.name, [data], asked, parameters)
        latency_ms = (time.perf_counter() - start) * 1000.0
        timing: Timing | None = None
        if before is not None:
            after, problem = self._statistics(reader)
            for _ in range(SETTLE_READS):
                if after is None or not unsettled([info.name, *info.timed], before, after):
                    break
                time.sleep(SETTLE_PAUSE_S)
                after, problem = self._statistics(reader)
            if after is not None:
                timing = step_times(info.name, info.timed, before, after)
        timing_json = timing.as_dict() if timing else {"steps": [], "note": f"no per-step times: {problem}"}
        return outputs, latency_ms, timing_json

    def answer(self, name: str, data: bytes, query: Mapping[str, str]) -> dict[str, Any]:
        """One encoded image through the ensemble ``name``: its answer drawn, the latency, the steps' times.

        Raises :class:`PlaygroundError` subclasses (their message is what the page shows) and
        :class:`ServerUnreachableError`.
        """
        info, limit = self.ensemble(name)
        task = info.task
        if task is None:
            raise AnswerError(f"the '{name}' ensemble is not loaded, or answers no task the UI knows")
        if not data:
            raise PlaygroundError("empty file (0 bytes): not sent")
        if len(data) > limit.max_bytes:
            raise TooLargeError(limit.refusal(len(data)))
        parameters = request_parameters(task, query)
        try:
            outputs, latency_ms, timing = self._on_worker(self._timed_infer, info, task, data, parameters)
        except ServerUnreachableError:
            raise
        except ClientError as exc:
            raise AnswerError(str(exc)) from None
        (result,) = SPLIT[task](outputs)
        try:
            view = VIEWS[task](data, result)
        except ValueError as exc:
            raise AnswerError(f"the server answered, but the answer cannot be drawn: {exc}") from None
        return {
            "ensemble": name,
            "task": task,
            "parameters": parameters,
            "stand_in": list(info.stand_in),
            "latency_ms": round(latency_ms, 3),
            "timing": timing,
            **view,
        }
