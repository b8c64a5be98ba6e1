"""A thin client for the triton-vision ensembles over gRPC or HTTP (``tritonclient``)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

import triton_vision_contract as t

from .errors import ClientError, ModelNotServedError, ServerUnreachableError
from .images import pack_images
from .inputs import ImageSource
from .jobs import REFUSED, SERVER_ERROR, TIMED_OUT, Done, ImageResult, RequestError, run_requests
from .segmentation import Segmentation, split_outputs

__all__ = ["ClientError", "ModelNotServedError", "ServerUnreachableError", "VisionClient", "ImageResult"]

PROTOCOLS = ("grpc", "http")
DEFAULT_URLS = {"grpc": f"{t.DEFAULT_HOST}:{t.DEFAULT_GRPC_PORT}", "http": f"{t.DEFAULT_HOST}:{t.DEFAULT_HTTP_PORT}"}
DEFAULT_CONCURRENCY = 4  # requests in flight for the *_many methods

Source = ImageSource | str | os.PathLike
# gRPC status codes (as tritonclient spells them) and HTTP codes that mean "this request is invalid".
_REFUSED_STATUS = ("StatusCode.INVALID_ARGUMENT", "400")
_TIMEOUT_STATUS = ("StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED")
_UNREACHABLE_STATUS = ("StatusCode.UNAVAILABLE",)


@dataclass(frozen=True)
class Classification:
    """Top-k answer for one image, best first."""

    class_ids: tuple[int, ...]
    scores: tuple[float, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Detections:
    """COCO detections for one image, best first; boxes are x1, y1, x2, y2 in the image's pixels."""

    boxes: tuple[tuple[float, float, float, float], ...]
    scores: tuple[float, ...]
    class_ids: tuple[int, ...]  # COCO category ids, 91-id numbering (1 = person)
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.scores)


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def split_detections(out: Mapping[str, np.ndarray]) -> list[Detections]:
    """A detection response (B images, rows padded to the largest COUNT) as B :class:`Detections`."""
    results = []
    for row, count in enumerate(out[t.COUNT].reshape(-1)):
        n = int(count)
        results.append(
            Detections(
                boxes=tuple(
                    (float(x1), float(y1), float(x2), float(y2))
                    for x1, y1, x2, y2 in out[t.BOXES][row].reshape(-1, 4)[:n]
                ),
                scores=tuple(float(s) for s in out[t.SCORES][row][:n]),
                class_ids=tuple(int(i) for i in out[t.CLASS_IDS][row][:n]),
                labels=tuple(_decode(label) for label in out[t.LABELS][row][:n]),
            )
        )
    return results


def split_classifications(out: Mapping[str, np.ndarray]) -> list[Classification]:
    return [
        Classification(
            class_ids=tuple(int(i) for i in ids),
            scores=tuple(float(s) for s in scores),
            labels=tuple(_decode(label) for label in labels),
        )
        for ids, scores, labels in zip(out[t.CLASS_IDS], out[t.SCORES], out[t.LABELS], strict=True)
    ]


def _detection_parameters(score_threshold: float | None, max_detections: int | None) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    if score_threshold is not None:
        parameters[t.SCORE_THRESHOLD] = float(score_threshold)
    if max_detections is not None:
        parameters[t.MAX_DETECTIONS] = int(max_detections)
    return parameters


# The outputs each ensemble's answers are read from (one list for the single and the streaming calls).
CLASSIFICATION_OUTPUTS = (t.CLASS_IDS, t.SCORES, t.LABELS)
DETECTION_OUTPUTS = (t.BOXES, t.SCORES, t.CLASS_IDS, t.LABELS, t.COUNT)
SEGMENTATION_OUTPUTS = (t.MASK, t.MASK_SIZE, t.CLASS_FRACTIONS, t.LABELS, t.OVERLAY)


class VisionClient:
    """Sends encoded image bytes to an ensemble and returns its outputs as NumPy arrays."""

    def __init__(
        self, url: str | None = None, protocol: str = "grpc", *, timeout_s: float = 120.0, model_prefix: str = ""
    ) -> None:
        """``model_prefix``: the prefix of a repository from ``triton-vision export-repo --prefix``;
        the ensembles and ``model_info`` are then called ``<prefix><name>``."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got '{protocol}'")
        self.protocol = protocol
        self.url = url or DEFAULT_URLS[protocol]
        self.timeout_s = timeout_s
        self.model_prefix = model_prefix
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
        self._module = module
        if protocol == "http":
            self._client = module.InferenceServerClient(
                self.url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            self._client = module.InferenceServerClient(self.url)

    def server_live(self) -> bool:
        return bool(self._client.is_server_live())

    def model_metadata(self, model: str) -> Any:
        """The model's metadata; raises ``InferenceServerException`` (unknown or unavailable model)."""
        return self._client.get_model_metadata(model)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> VisionClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def infer(
        self,
        model: str,
        images: Sequence[bytes],
        outputs: Sequence[str],
        parameters: Mapping[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """One request: ``images`` travel as one padded UINT8 batch on input IMAGE."""
        from tritonclient.utils import InferenceServerException

        batch = pack_images(images)
        tensor = self._module.InferInput(t.IMAGE, list(batch.shape), "UINT8")
        tensor.set_data_from_numpy(batch)
        requested = [self._module.InferRequestedOutput(name) for name in outputs]
        kwargs: dict[str, Any] = {"parameters": dict(parameters)} if parameters else {}
        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout_s
        try:
            result = self._client.infer(model, [tensor], outputs=requested, **kwargs)
        except (InferenceServerException, OSError) as exc:
            error = self._error(exc)
            raise (ClientError(error.message) if isinstance(error, RequestError) else error) from None
        return {name: result.as_numpy(name) for name in outputs}

    # -- many images, many requests in flight ---------------------------------------------------
    def _error(self, exc: BaseException) -> RequestError | ServerUnreachableError:
        """A failed request's exception as a per-request error, or as the end of the job."""
        from tritonclient.utils import InferenceServerException

        if not isinstance(exc, InferenceServerException):
            detail = str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                return RequestError(f"no answer within {self.timeout_s:g} s ({detail})", TIMED_OUT)
            if isinstance(exc, OSError):  # HTTP: refused or reset connections
                return ServerUnreachableError(self.url, self.protocol, detail)
            return RequestError(f"{type(exc).__name__}: {detail}", SERVER_ERROR)
        status, message = str(exc.status()), exc.message() or str(exc)
        if status in _UNREACHABLE_STATUS:
            return ServerUnreachableError(self.url, self.protocol, message)
        if status in _REFUSED_STATUS:
            return RequestError(message, REFUSED)
        if status in _TIMEOUT_STATUS:
            return RequestError(f"{message} (after {self.timeout_s:g} s)", TIMED_OUT)
        return RequestError(message, SERVER_ERROR)

    def check_ready(self, model: str) -> None:
        """Raise :class:`ServerUnreachableError` or :class:`ModelNotServedError` unless ``model`` is ready."""
        from tritonclient.utils import InferenceServerException

        try:
            ready = self._client.is_model_ready(model)
        except InferenceServerException as exc:
            error = self._error(exc)
            if isinstance(error, ServerUnreachableError):
                raise error from None
            ready = False
        except Exception as exc:  # noqa: BLE001 - HTTP: refused, reset, or not an HTTP server at all
            raise ServerUnreachableError(self.url, self.protocol, f"{type(exc).__name__}: {exc}") from None
        if not ready:
            raise ModelNotServedError(self.url, model)

    def _request(self, images: Sequence[bytes], outputs: Sequence[str], parameters: Mapping[str, Any] | None):
        batch = pack_images(images)
        tensor = self._module.InferInput(t.IMAGE, list(batch.shape), "UINT8")
        tensor.set_data_from_numpy(batch)
        requested = [self._module.InferRequestedOutput(name) for name in outputs]
        return tensor, requested, ({"parameters": dict(parameters)} if parameters else {})

    def _submitter(
        self, model: str, outputs: Sequence[str], parameters: Mapping[str, Any] | None, concurrency: int
    ) -> tuple[Callable[[Sequence[bytes], Done], None], Callable[[], None]]:
        """``submit(images, done)`` for :func:`run_requests`, and a function that releases its resources.

        gRPC: ``async_infer`` with a callback (many requests on one channel). HTTP: ``concurrency``
        threads, each with its own connection, running blocking requests.
        """

        def deliver(done: Done, result: Any, error: BaseException | None) -> None:
            if error is not None:
                done(None, self._error(error))
                return
            try:
                arrays = {name: result.as_numpy(name) for name in outputs}
            except Exception as exc:  # noqa: BLE001 - a malformed response fails this request only
                done(None, RequestError(f"unexpected answer from the server: {exc}", SERVER_ERROR))
                return
            done(arrays, None)

        if self.protocol == "grpc":

            def submit_grpc(images: Sequence[bytes], done: Done) -> None:
                try:
                    tensor, requested, kwargs = self._request(images, outputs, parameters)
                    self._client.async_infer(
                        model,
                        [tensor],
                        lambda result, error: deliver(done, result, error),
                        outputs=requested,
                        client_timeout=self.timeout_s,
                        **kwargs,
                    )
                except Exception as exc:  # noqa: BLE001 - delivered to the engine, which decides
                    deliver(done, None, exc)

            return submit_grpc, lambda: None

        local = threading.local()
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="triton-vision-http")
        connections: list[Any] = []

        def blocking(images: Sequence[bytes], done: Done) -> None:
            if not hasattr(local, "client"):
                local.client = self._module.InferenceServerClient(self.url, network_timeout=self.timeout_s)
                connections.append(local.client)
            try:
                tensor, requested, kwargs = self._request(images, outputs, parameters)
                result = local.client.infer(model, [tensor], outputs=requested, **kwargs)
            except Exception as exc:  # noqa: BLE001 - delivered to the engine, which decides
                deliver(done, None, exc)
            else:
                deliver(done, result, None)

        def close() -> None:
            pool.shutdown(wait=False, cancel_futures=True)
            for connection in connections:
                connection.close()

        def submit_http(images: Sequence[bytes], done: Done) -> None:
            pool.submit(blocking, images, done)

        return submit_http, close

    def infer_many(
        self,
        model: str,
        sources: Iterable[Source],
        outputs: Sequence[str],
        parameters: Mapping[str, Any] | None,
        split: Callable[[Mapping[str, np.ndarray]], list],
        *,
        batch: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        keep_data: bool = False,
    ) -> Iterator[ImageResult]:
        """One :class:`ImageResult` per image file, yielded as its request completes.

        Files are read only as requests go out (at most ``concurrency`` requests of ``batch``
        images in flight; ``batch`` defaults to the ensemble's max_batch_size). A file that
        cannot be read, or that the server refuses, gives a failed result (``error``,
        ``reason``); the others go on. Raises :class:`ServerUnreachableError` when no server
        answers (at the start or later) and :class:`ModelNotServedError` when the server lacks
        ``model``.
        """
        self.check_ready(model)
        submit, close = self._submitter(model, outputs, parameters, concurrency)
        try:
            yield from run_requests(
                sources,
                submit,
                split,
                batch=batch or t.MAX_BATCH[model],
                concurrency=concurrency,
                keep_data=keep_data,
            )
        finally:
            close()

    def classify_many(
        self,
        sources: Iterable[Source],
        top_k: int | None = None,
        *,
        batch: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> Iterator[ImageResult]:
        """Classify image files (paths or :class:`ImageSource`), yielding results as they complete.

        >>> for result in client.classify_many(Path("photos").glob("*.jpg"), concurrency=8):
        ...     print(result.path, result.answer.labels[0] if result.ok else result.error)
        """
        parameters = {t.TOP_K: int(top_k)} if top_k is not None else None
        outputs = CLASSIFICATION_OUTPUTS
        return self.infer_many(
            self.model_prefix + t.CLASSIFICATION,
            sources,
            outputs,
            parameters,
            split_classifications,
            batch=batch,
            concurrency=concurrency,
        )

    def detect_many(
        self,
        sources: Iterable[Source],
        score_threshold: float | None = None,
        max_detections: int | None = None,
        *,
        batch: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        keep_data: bool = False,
    ) -> Iterator[ImageResult]:
        """Detect objects in image files; ``keep_data`` keeps each file's bytes on its result (to draw on)."""
        outputs = DETECTION_OUTPUTS
        return self.infer_many(
            self.model_prefix + t.DETECTION,
            sources,
            outputs,
            _detection_parameters(score_threshold, max_detections),
            split_detections,
            batch=batch,
            concurrency=concurrency,
            keep_data=keep_data,
        )

    def segment_many(
        self,
        sources: Iterable[Source],
        overlay: bool = False,
        *,
        batch: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> Iterator[ImageResult]:
        """Segment image files, yielding one :class:`Segmentation` result per image as it completes."""
        outputs = SEGMENTATION_OUTPUTS
        return self.infer_many(
            self.model_prefix + t.SEGMENTATION,
            sources,
            outputs,
            {t.OVERLAY_PARAMETER: bool(overlay)},
            split_outputs,
            batch=batch,
            concurrency=concurrency,
        )

    def infer_in_batches(
        self,
        model: str,
        images: Sequence[bytes],
        outputs: Sequence[str],
        parameters: Mapping[str, Any] | None,
        split: Callable[[Mapping[str, np.ndarray]], list],
        *,
        batch: int,
        concurrency: int = 1,
    ) -> list:
        """``images`` in requests of at most ``batch`` (the ensemble's max_batch_size), one result
        per image in order; over gRPC up to ``concurrency`` requests at once, over HTTP one by one."""
        if not images:
            raise ValueError("no images to send")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")

        def one_request(chunk: Sequence[bytes]) -> list:
            return split(self.infer(model, chunk, outputs, parameters))

        chunks = [images[start : start + batch] for start in range(0, len(images), batch)]
        workers = max(1, min(concurrency, len(chunks))) if self.protocol == "grpc" else 1
        if workers == 1:
            answers = [one_request(chunk) for chunk in chunks]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                answers = list(pool.map(one_request, chunks))
        return [result for answer in answers for result in answer]

    def classify(
        self, images: Sequence[bytes], top_k: int | None = None, *, batch: int = t.CLASSIFICATION_MAX_BATCH
    ) -> list[Classification]:
        parameters = {t.TOP_K: int(top_k)} if top_k is not None else None
        return self.infer_in_batches(
            self.model_prefix + t.CLASSIFICATION,
            images,
            CLASSIFICATION_OUTPUTS,
            parameters,
            split_classifications,
            batch=batch,
        )

    def detect(
        self,
        images: Sequence[bytes],
        score_threshold: float | None = None,
        max_detections: int | None = None,
        *,
        batch: int = t.DETECTION_MAX_BATCH,
        concurrency: int = 2,
    ) -> list[Detections]:
        """One :class:`Detections` per image, in order; ``batch`` images per request.

        Over gRPC up to ``concurrency`` requests run at once; over HTTP one after another. Each
        image's rows are cut to its COUNT (the server pads a request to its largest COUNT).
        """
        parameters = _detection_parameters(score_threshold, max_detections)
        outputs = DETECTION_OUTPUTS
        return self.infer_in_batches(
            self.model_prefix + t.DETECTION,
            images,
            outputs,
            parameters,
            split_detections,
            batch=batch,
            concurrency=concurrency,
        )

    def segment(
        self, images: Sequence[bytes], overlay: bool = False, *, batch: int = t.SEGMENTATION_MAX_BATCH
    ) -> list[Segmentation]:
        """One :class:`Segmentation` per image (mask at the image's own size); ``batch`` images a request."""
        outputs = SEGMENTATION_OUTPUTS
        return self.infer_in_batches(
            self.model_prefix + t.SEGMENTATION,
            images,
            outputs,
            {t.OVERLAY_PARAMETER: bool(overlay)},
            split_outputs,
            batch=batch,
        )

    def model_info(self, query: str) -> Any:
        """The ``model_info`` model's JSON answer to ``query``; None if the server has no model_info."""
        from tritonclient.utils import InferenceServerException

        try:
            model_info = self.model_prefix + t.MODEL_INFO
            if not self._client.is_model_ready(model_info):
                return None
            tensor = self._module.InferInput(t.INFO_QUERY, [1], "BYTES")
            tensor.set_data_from_numpy(np.array([query.encode("utf-8")], dtype=np.object_))
            result = self._client.infer(model_info, [tensor])
            return json.loads(_decode(result.as_numpy(t.INFO_JSON)[0]))
        except (InferenceServerException, ValueError):
            return None

    def model_sources(self) -> dict[str, dict[str, str]]:
        """What the server's ``model_info`` model says about its ONNX files ({} if it has none)."""
        try:
            answer = self.model_info(t.INFO_SOURCES)
        except Exception:  # noqa: BLE001 - only for warnings: no server, no model_info, another answer
            return {}
        return answer if isinstance(answer, dict) else {}

    def repository_ensembles(self) -> list[str] | None:
        """The ensembles of the server's repository, loaded or not (None without model_info)."""
        answer = self.model_info(t.INFO_ENSEMBLES)
        return [str(name) for name in answer] if isinstance(answer, list) else None

    def stand_in_warnings(self, models: Sequence[str]) -> list[str]:
        sources = self.model_sources()
        return [
            f"WARNING: the served '{self.model_prefix}{name}' is a stand-in with random weights: "
            "its answers are meaningless"
            for name in models
            if sources.get(self.model_prefix + name, {}).get("kind") == "stand-in"
        ]
