"""A thin client for triton-vision ensembles over gRPC or HTTP (``tritonclient``).

Any ensemble answering with a task's wire contract works (``contract.TASK_OUTPUTS``): the client
asks the server for its task and its images per request (its config), never assumes them from
its name. Every call goes through one engine (:func:`jobs.run_requests`): the list calls
(:meth:`VisionClient.classify`, ...) are the streaming calls (:meth:`VisionClient.classify_many`,
...) with the answers put back in input order.

Why one module of ~530 lines: it is the one public class, whose methods are the API a user reads
(three tasks, each a list and a streaming call with their documented parameters, plus discovery);
the machinery lives elsewhere (:mod:`.transport`, :mod:`.jobs`, :mod:`.answers`,
:mod:`.connection`, :mod:`.discovery`, :mod:`.survey`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

import triton_vision_contract as contract

from . import survey
from .answers import (
    SPLITTERS,
    Classification,
    Detections,
    Embedding,
    Segmentation,
    decode,
    split_classifications,
    split_detections,
    split_pipeline,
)
from .connection import DEFAULT_URLS, PROTOCOLS, diagnose, is_metrics_port, metrics_advice, resolve_url
from .discovery import EnsembleConfig, EnsembleInfo, ensemble_info, mismatch, stand_in_warning, stand_ins
from .errors import ClientError, EnsembleMismatchError, ModelNotServedError, ServerUnreachableError
from .inputs import ImageSource
from .jobs import (
    DEFAULT_RETRY_BUDGET_S,
    NO_RETRY,
    ImageResult,
    RequestError,
    RetryPolicy,
    run_requests,
)
from .progress import count
from .transport import NOT_LOADED_PHRASE, Transport

__all__ = [
    "DEFAULT_URLS",
    "PROTOCOLS",
    "Classification",
    "ClientError",
    "Detections",
    "EnsembleInfo",
    "ImageResult",
    "ModelNotServedError",
    "Segmentation",
    "ServerUnreachableError",
    "VisionClient",
    "split_classifications",
    "split_detections",
    "split_pipeline",
]

DEFAULT_CONCURRENCY = 4  # requests in flight for the *_many methods

Source = ImageSource | str | os.PathLike


def _classification_parameters(top_k: int | None) -> dict[str, Any] | None:
    return {contract.TOP_K: int(top_k)} if top_k is not None else None


def _segmentation_parameters(overlay: bool) -> dict[str, Any]:
    return {contract.OVERLAY_PARAMETER: bool(overlay)}


def _detection_parameters(score_threshold: float | None, max_detections: int | None) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    if score_threshold is not None:
        parameters[contract.SCORE_THRESHOLD] = float(score_threshold)
    if max_detections is not None:
        parameters[contract.MAX_DETECTIONS] = int(max_detections)
    return parameters


def _pipeline_parameters(score_threshold: float | None, max_objects: int | None, top_k: int | None) -> dict[str, Any]:
    return {
        **_detection_parameters(score_threshold, None),
        **({contract.MAX_OBJECTS: int(max_objects)} if max_objects is not None else {}),
        **(_classification_parameters(top_k) or {}),
    }


class VisionClient:
    """Sends encoded image bytes to an ensemble and returns its answers.

    ``url``: HOST:PORT (default ``TRITON_VISION_URL``, else 127.0.0.1:8001 for gRPC, :8000 for
    HTTP). ``model_prefix``: the prefix of a repository from ``triton-vision export-repo
    --prefix``: every model the client calls is then ``<prefix><name>`` (``model_info`` too); a
    name that already starts with the prefix is taken as it is. ``priority``: Triton's request
    priority (``contract.PROBE_PRIORITY`` is for health probes: served first, past the bounded
    queues; 0, the default: the models' default priority).
    """

    def __init__(
        self,
        url: str | None = None,
        protocol: str = "grpc",
        *,
        timeout_s: float = 120.0,
        model_prefix: str = "",
        priority: int = 0,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got '{protocol}'")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be above 0, got {timeout_s}")
        self.protocol = protocol
        self.url = resolve_url(url, protocol)[0]
        self.timeout_s = timeout_s
        self.model_prefix = model_prefix
        self._configs: dict[str, EnsembleConfig] = {}
        self._transport = Transport(self.url, protocol, timeout_s, priority)
        self._client = self._transport.client

    def served_name(self, name: str) -> str:
        """The name the server has for ``name``: with the model prefix (unless it starts with it)."""
        if self.model_prefix and name.startswith(self.model_prefix):
            return name
        return self.model_prefix + name

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

    # -- one request ------------------------------------------------------------------------------
    def infer(
        self,
        model: str,
        images: Sequence[bytes],
        outputs: Sequence[str],
        parameters: Mapping[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """One raw request to ``model`` (its name as given): ``images`` as one padded batch on IMAGE."""
        from tritonclient.utils import InferenceServerException

        try:
            result = self._transport.infer(self._client, model, images, outputs, parameters)
        except (InferenceServerException, OSError) as exc:
            error = self._transport.failure(exc)
            raise (ClientError(error.message) if isinstance(error, RequestError) else error) from None
        return {name: result.as_numpy(name) for name in outputs}

    # -- what the server has ------------------------------------------------------------------------
    def _unreachable(self, exc: BaseException) -> ServerUnreachableError:
        """No answer at the first contact: find out why (the other protocol's port, an unknown host)."""
        from tritonclient.utils import InferenceServerException

        detail = exc.message() if isinstance(exc, InferenceServerException) else None
        detail = detail or f"{type(exc).__name__}: {exc}"
        return ServerUnreachableError(self.url, self.protocol, detail, diagnose(self.url, self.protocol))

    def _ask(self, call: Callable[[], Any]) -> Any:
        """``call()``; a connection failure becomes :class:`ServerUnreachableError` (diagnosed),
        a server's error stays an ``InferenceServerException``."""
        from tritonclient.utils import InferenceServerException

        try:
            return call()
        except InferenceServerException as exc:
            if isinstance(self._transport.failure(exc), ServerUnreachableError):
                raise self._unreachable(exc) from None
            raise
        except Exception as exc:  # noqa: BLE001 - HTTP: refused, reset, unknown host, not an HTTP server
            raise self._unreachable(exc) from None

    def check_server(self) -> None:
        """Raise :class:`ServerUnreachableError` (saying why) unless a server answers and is live."""
        if not self._ask(self._client.is_server_live):
            if is_metrics_port(self.url):  # HTTP answered, but not Triton's liveness route
                raise ServerUnreachableError(
                    self.url, self.protocol, "not live", metrics_advice(self.url, self.protocol)
                )
            raise ClientError(f"the server at {self.url} answers but is not live")

    def _ready(self, model: str) -> bool:
        from tritonclient.utils import InferenceServerException

        try:
            return bool(self._ask(lambda: self._client.is_model_ready(model)))
        except InferenceServerException:
            return False

    def check_ready(self, model: str) -> None:
        """Raise :class:`ServerUnreachableError` or :class:`ModelNotServedError` unless ``model`` is ready."""
        if not self._ready(model):
            raise ModelNotServedError(self.url, model)

    def _config(self, model: str, *, fresh: bool = False) -> EnsembleConfig:
        """The ensemble's config (kept after the first answer), nested ensembles' steps among its
        steps; :class:`ModelNotServedError` when the server has no such model loaded."""
        if not fresh and model in self._configs:
            return self._configs[model]
        answer = self._config_json(model)
        if answer is None:
            raise ModelNotServedError(self.url, model)
        config = EnsembleConfig.from_json(model, answer).with_nested(self._config_json)
        self._configs[model] = config
        return config

    def _config_json(self, model: str) -> Mapping[str, Any] | None:
        """A model's config as the server answers it (None when it has no such model loaded)."""
        from tritonclient.utils import InferenceServerException

        try:
            if self.protocol == "grpc":
                return self._ask(
                    lambda: self._client.get_model_config(model, as_json=True, client_timeout=self.timeout_s)
                )
            return self._ask(lambda: self._client.get_model_config(model))
        except InferenceServerException:
            return None

    def _has_model(self, model: str) -> bool:
        """False only when the server says it has no model of that name at all."""
        from tritonclient.utils import InferenceServerException

        try:
            self._ask(lambda: self._client.get_model_metadata(model))
            return True
        except InferenceServerException as exc:
            message = exc.message() or str(exc)
            return NOT_LOADED_PHRASE in message or "not found" not in message.lower()

    def task(self, name: str) -> str | None:
        """The task an ensemble's outputs carry (None: no task's); :class:`ModelNotServedError` when
        the server has no such ensemble loaded."""
        return self._config(self.served_name(name)).task

    def outputs_of(self, name: str) -> tuple[str, ...]:
        """The outputs an ensemble's config lists (``name`` as served); :class:`ModelNotServedError`
        when the server has no such ensemble loaded."""
        return self._config(name).outputs

    def ensemble(self, name: str) -> EnsembleInfo:
        """One ensemble's task, images per request, readiness and stand-in steps.

        Raises :class:`ModelNotServedError` when the server has no such ensemble loaded and
        :class:`ServerUnreachableError` when no server answers.
        """
        model = self.served_name(name)
        config = self._config(model, fresh=True)
        return ensemble_info(model, config, self._ready(model), self.model_sources())

    def ensembles(self) -> list[EnsembleInfo]:
        """Every ensemble of the server's repository (with the model prefix, if any), loaded or not.

        Names come from the ``model_info`` model (it lists the repository's ensembles, so one that
        failed to load is there, ``ready`` False, task and batch size None); without model_info,
        the built-in ensembles the server knows. Raises :class:`ServerUnreachableError` when no
        server answers.
        """
        return survey.ensembles(self)

    def other_prefixes(self) -> dict[str, list[str]]:
        """The ensembles the server has under model prefixes other than the client's: {prefix:
        names} ({} when none; ``""``: no prefix), from its loaded models' statistics and, where that
        API is open, its repository index."""
        return survey.other_prefixes(self)

    def plan(self, task: str, ensemble: str | None, batch: int | None, *, top_k: int | None = None) -> tuple[str, int]:
        """The served ensemble and the images per request for a call of ``task``; raises
        :class:`EnsembleMismatchError` for another task's ensemble, a batch above its maximum or a
        ``top_k`` above its class count (where its config says it)."""
        model = self.served_name(ensemble or survey.only_ensemble_of(self, task))
        try:
            config = self._config(model)
        except ModelNotServedError:
            raise survey.not_served(self, model, task) from None
        if config.task != task:
            raise EnsembleMismatchError(mismatch(model, config, task))
        if top_k is not None and config.classes is not None and top_k > config.classes:
            raise EnsembleMismatchError(
                f"the '{model}' ensemble has {config.classes} classes: --top-k {top_k} asks for more labels "
                f"than it has (give --top-k {config.classes} or less)"
            )
        limit = max(1, config.max_batch_size)
        if batch is None:
            return model, limit
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if batch > limit:
            raise EnsembleMismatchError(
                f"the '{model}' ensemble takes at most {count(limit, 'image')} per request (its max_batch_size), "
                f"not {batch}: give --batch {limit} or less, or leave it out"
            )
        return model, batch

    # -- many images, many requests in flight ---------------------------------------------------
    def infer_many(
        self,
        task: str,
        sources: Iterable[Source],
        parameters: Mapping[str, Any] | None = None,
        *,
        ensemble: str | None = None,
        batch: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        keep_data: bool = False,
        retry_for_s: float = DEFAULT_RETRY_BUDGET_S,
        on_retry: Callable[[str], None] | None = None,
        resend_refused: bool = True,
    ) -> Iterator[ImageResult]:
        """One :class:`ImageResult` per image, yielded as its request completes (the one engine).

        ``task``: a contract task; ``ensemble``: any ensemble of that task (default: the built-in
        one, ``task`` itself). Files are read only as requests go out (at most ``concurrency``
        requests of ``batch`` images in flight; ``batch`` defaults to the ensemble's
        max_batch_size, and more is refused). A file that cannot be read, or that the server
        refuses, gives a failed result (``error``, ``reason``); the others go on. A request the
        server calls temporarily unavailable is sent again with back-off for up to
        ``retry_for_s`` seconds (0: never), each time calling ``on_retry(the server's message)``.
        Raises :class:`ServerUnreachableError` when no server answers (at the start or later),
        :class:`ModelNotServedError` when the server lacks the ensemble, :class:`EnsembleMismatchError`
        for an ensemble of another task or too large a batch.
        """
        top_k = (parameters or {}).get(contract.TOP_K) if task == contract.CLASSIFICATION else None
        model, per_request = self.plan(task, ensemble, batch, top_k=top_k)
        self.check_ready(model)
        outputs = contract.outputs_to_ask(task, self._config(model).outputs)
        submit, close = self._transport.submitter(model, outputs, parameters, concurrency)
        try:
            yield from run_requests(
                sources,
                submit,
                SPLITTERS[task],
                batch=per_request,
                concurrency=concurrency,
                keep_data=keep_data,
                resend_refused=resend_refused,
                retry=RetryPolicy(budget_s=retry_for_s) if retry_for_s > 0 else NO_RETRY,
                on_retry=on_retry,
            )
        finally:
            close()

    def classify_many(
        self,
        sources: Iterable[Source],
        top_k: int | None = None,
        *,
        ensemble: str | None = None,
        batch: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        retry_for_s: float = DEFAULT_RETRY_BUDGET_S,
        on_retry: Callable[[str], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Classify image files (paths or :class:`ImageSource`), yielding results as they complete.

        >>> for result in client.classify_many(Path("photos").glob("*.jpg"), concurrency=8):
        ...     print(result.path, result.answer.labels[0] if result.ok else result.error)
        """
        return self.infer_many(
            contract.CLASSIFICATION,
            sources,
            _classification_parameters(top_k),
            ensemble=ensemble,
            batch=batch,
            concurrency=concurrency,
            retry_for_s=retry_for_s,
            on_retry=on_retry,
        )

    def detect_many(
        self,
        sources: Iterable[Source],
        score_threshold: float | None = None,
        max_detections: int | None = None,
        *,
        ensemble: str | None = None,
        batch: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        keep_data: bool = False,
        retry_for_s: float = DEFAULT_RETRY_BUDGET_S,
        on_retry: Callable[[str], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Detect objects in image files; ``keep_data`` keeps each file's bytes on its result (to draw on)."""
        return self.infer_many(
            contract.DETECTION,
            sources,
            _detection_parameters(score_threshold, max_detections),
            ensemble=ensemble,
            batch=batch,
            concurrency=concurrency,
            keep_data=keep_data,
            retry_for_s=retry_for_s,
            on_retry=on_retry,
        )

    def pipeline_many(
        self,
        sources: Iterable[Source],
        score_threshold: float | None = None,
        max_objects: int | None = None,
        top_k: int | None = None,
        *,
        ensemble: str | None = None,
        batch: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        keep_data: bool = False,
        retry_for_s: float = DEFAULT_RETRY_BUDGET_S,
        on_retry: Callable[[str], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Objects of a pipeline ensemble (detect, then classify each object): each result's answer is
        the detections with each object's second-stage top-k (``answer.objects``). Without ``ensemble``,
        the server's only pipeline."""
        parameters = _pipeline_parameters(score_threshold, max_objects, top_k)
        return self.infer_many(
            contract.PIPELINE,
            sources,
            parameters,
            ensemble=ensemble,
            batch=batch,
            concurrency=concurrency,
            keep_data=keep_data,
            retry_for_s=retry_for_s,
            on_retry=on_retry,
        )

    def segment_many(
        self,
        sources: Iterable[Source],
        overlay: bool = False,
        *,
        ensemble: str | None = None,
        batch: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        keep_data: bool = False,
        retry_for_s: float = DEFAULT_RETRY_BUDGET_S,
        on_retry: Callable[[str], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Segment image files, yielding one :class:`Segmentation` result per image as it completes."""
        return self.infer_many(
            contract.SEGMENTATION,
            sources,
            _segmentation_parameters(overlay),
            ensemble=ensemble,
            batch=batch,
            concurrency=concurrency,
            keep_data=keep_data,
            retry_for_s=retry_for_s,
            on_retry=on_retry,
        )

    def embed_many(
        self,
        sources: Iterable[Source],
        *,
        ensemble: str | None = None,
        batch: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        retry_for_s: float = DEFAULT_RETRY_BUDGET_S,
        on_retry: Callable[[str], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Embed image files through an embedding ensemble, one :class:`Embedding` result per image as it completes."""
        return self.infer_many(
            contract.EMBEDDING,
            sources,
            None,
            ensemble=ensemble,
            batch=batch,
            concurrency=concurrency,
            retry_for_s=retry_for_s,
            on_retry=on_retry,
        )

    # -- encoded bytes in, answers out in order ---------------------------------------------------
    def _in_order(
        self,
        task: str,
        images: Sequence[bytes],
        parameters: Mapping[str, Any] | None,
        ensemble: str | None,
        batch: int | None,
        concurrency: int,
    ) -> list:
        """The answers for ``images`` in their order, from the one engine. As one request would,
        the first failure (in that order) raises :class:`ClientError` with the server's message: a
        refused batch is not sent again image by image, nothing is retried."""
        if not images:
            raise ValueError("no images to send")
        for index, data in enumerate(images):
            if not data:
                raise ValueError(f"image {index} is empty (0 bytes)")
        sources = [ImageSource.in_memory(index, data) for index, data in enumerate(images)]
        position = {id(source): index for index, source in enumerate(sources)}
        results: list[ImageResult | None] = [None] * len(sources)
        stream = self.infer_many(
            task,
            sources,
            parameters,
            ensemble=ensemble,
            batch=batch,
            concurrency=concurrency,
            retry_for_s=0,
            resend_refused=False,
        )
        for done in stream:
            results[position[id(done.source)]] = done
        answers = []
        for result in results:
            if result is None or not result.ok:
                raise ClientError(result.error if result is not None else "no answer")
            answers.append(result.answer)
        return answers

    def classify(
        self,
        images: Sequence[bytes],
        top_k: int | None = None,
        *,
        ensemble: str | None = None,
        batch: int | None = None,
        concurrency: int = 1,
    ) -> list[Classification]:
        """One :class:`Classification` per image, in order; ``batch`` images per request (default:
        the ensemble's max_batch_size), up to ``concurrency`` requests at once."""
        parameters = _classification_parameters(top_k)
        return self._in_order(contract.CLASSIFICATION, images, parameters, ensemble, batch, concurrency)

    def detect(
        self,
        images: Sequence[bytes],
        score_threshold: float | None = None,
        max_detections: int | None = None,
        *,
        ensemble: str | None = None,
        batch: int | None = None,
        concurrency: int = 2,
    ) -> list[Detections]:
        """One :class:`Detections` per image, in order (each cut to its COUNT)."""
        parameters = _detection_parameters(score_threshold, max_detections)
        return self._in_order(contract.DETECTION, images, parameters, ensemble, batch, concurrency)

    def pipeline(
        self,
        images: Sequence[bytes],
        score_threshold: float | None = None,
        max_objects: int | None = None,
        top_k: int | None = None,
        *,
        ensemble: str | None = None,
        batch: int | None = None,
        concurrency: int = 2,
    ) -> list[Detections]:
        """One :class:`Detections` per image, in order, each object with its second-stage answer
        (``objects``); without ``ensemble``, the server's only pipeline."""
        parameters = _pipeline_parameters(score_threshold, max_objects, top_k)
        return self._in_order(contract.PIPELINE, images, parameters, ensemble, batch, concurrency)

    def segment(
        self,
        images: Sequence[bytes],
        overlay: bool = False,
        *,
        ensemble: str | None = None,
        batch: int | None = None,
        concurrency: int = 1,
    ) -> list[Segmentation]:
        """One :class:`Segmentation` per image (mask at the image's own size), in order."""
        parameters = _segmentation_parameters(overlay)
        return self._in_order(contract.SEGMENTATION, images, parameters, ensemble, batch, concurrency)

    def embed(
        self,
        images: Sequence[bytes],
        *,
        ensemble: str | None = None,
        batch: int | None = None,
        concurrency: int = 1,
    ) -> list[Embedding]:
        """One :class:`Embedding` per image, in order."""
        return self._in_order(contract.EMBEDDING, images, None, ensemble, batch, concurrency)

    # -- model_info: sources of the model files, the repository's ensembles ---------------------
    def model_info(self, query: str, *, model: str | None = None) -> Any:
        """The ``model_info`` model's JSON answer to ``query`` (``model``: that model instead of the
        client's own model_info); None if the server has no such model ready."""
        from tritonclient.utils import InferenceServerException

        try:
            model_info = model or self.served_name(contract.MODEL_INFO)
            if not self._client.is_model_ready(model_info):
                return None
            tensor = self._transport.module.InferInput(contract.INFO_QUERY, [1], "BYTES")
            tensor.set_data_from_numpy(np.array([query.encode("utf-8")], dtype=np.object_))
            result = self._client.infer(model_info, [tensor])
            return json.loads(decode(result.as_numpy(contract.INFO_JSON)[0]))
        except (InferenceServerException, ValueError):
            return None

    def model_sources(self) -> dict[str, dict[str, str]]:
        """What the server's ``model_info`` model says about its ONNX files ({} if it has none)."""
        try:
            answer = self.model_info(contract.INFO_SOURCES)
        except Exception:  # noqa: BLE001 - only for warnings: no server, no model_info, another answer
            return {}
        return answer if isinstance(answer, dict) else {}

    def repository_ensembles(self) -> list[str] | None:
        """The ensembles of the server's repository, loaded or not (None without model_info)."""
        answer = self.model_info(contract.INFO_ENSEMBLES)
        return [str(name) for name in answer] if isinstance(answer, list) else None

    def stand_in_warnings(self, models: Sequence[str]) -> list[str]:
        """A warning for each of ``models`` (names without the prefix) that is a stand-in."""
        served = tuple(self.served_name(name) for name in models)
        return [stand_in_warning(name) for name in stand_ins(served, self.model_sources())]
