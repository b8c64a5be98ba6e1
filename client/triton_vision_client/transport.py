"""tritonclient, gRPC or HTTP: the IMAGE tensor of a request, sending one (blocking, or for the
engine with a callback), and what a failed request's exception means: a per-request error
(refused, timed out, temporarily unavailable, a server error) or the end of the job (no server)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import triton_vision_contract as contract

from .errors import ServerUnreachableError
from .images import pack_images
from .jobs import REFUSED, SERVER_ERROR, TIMED_OUT, UNAVAILABLE, Done, RequestError

# gRPC status codes (as tritonclient spells them) and HTTP codes that mean "this request is invalid".
_REFUSED_STATUS = ("StatusCode.INVALID_ARGUMENT", "400")
_TIMEOUT_STATUS = ("StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED")
# "Try again later": Triton answers UNAVAILABLE (gRPC) / 503 (HTTP) for a full queue ("Exceeds
# maximum queue size") or a queue policy's timeout ("Request timeout expired"); 429 and
# RESOURCE_EXHAUSTED are other servers' and proxies' way to say so.
_TEMPORARY_STATUS = ("StatusCode.UNAVAILABLE", "StatusCode.RESOURCE_EXHAUSTED", "503", "429")
# Triton's words for a refusal for load name neither the step nor the bound: say what they mean.
BUSY_HINT = (
    "the server is busy: one of the ensemble's models already has max_queue_size requests waiting, or this "
    "request waited that model's queue timeout; the same request may pass when sent again"
)
_NOT_FOUND_STATUS = ("StatusCode.NOT_FOUND", "404")
# NOT_FOUND for a model the repository has but that is not loaded now (unloaded, loading, being
# healed), as against "... is not found" for a name it does not have.
NOT_LOADED_PHRASE = "has no available versions"
# A Python model whose process died: `serve` reloads it within seconds.
_DEAD_STUB_PHRASES = ("Stub process", "not healthy")
# gRPC's own UNAVAILABLE, raised on this side when no connection can be made: no server there.
_TRANSPORT_PHRASES = (
    "failed to connect to all addresses",
    "errors resolving",
    "connections to all backends failing",
    "Socket closed",
    "Connection refused",
    "Connection reset",
    "DNS resolution failed",
)


def request_failure(
    exc: BaseException, *, url: str, protocol: str, timeout_s: float
) -> RequestError | ServerUnreachableError:
    """``exc`` (from tritonclient, or a transport's own exception) as what it means for the request."""
    from tritonclient.utils import InferenceServerException

    if not isinstance(exc, InferenceServerException):
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            return RequestError(f"no answer within {timeout_s:g} s ({detail})", TIMED_OUT)
        if isinstance(exc, OSError):  # HTTP: refused or reset connections
            return ServerUnreachableError(url, protocol, detail)
        return RequestError(f"{type(exc).__name__}: {detail}", SERVER_ERROR)
    status, message = str(exc.status()), exc.message() or str(exc)
    if status == "StatusCode.UNAVAILABLE" and any(phrase in message for phrase in _TRANSPORT_PHRASES):
        return ServerUnreachableError(url, protocol, message)
    if status in _TEMPORARY_STATUS and contract.is_busy(message):
        return RequestError(f"{message} ({BUSY_HINT})", UNAVAILABLE)
    if (
        status in _TEMPORARY_STATUS
        or (status in _NOT_FOUND_STATUS and NOT_LOADED_PHRASE in message)
        or all(phrase in message for phrase in _DEAD_STUB_PHRASES)
    ):
        return RequestError(message, UNAVAILABLE)
    if status in _REFUSED_STATUS:
        return RequestError(message, REFUSED)
    if status in _TIMEOUT_STATUS:
        return RequestError(f"{message} (after {timeout_s:g} s)", TIMED_OUT)
    return RequestError(message, SERVER_ERROR)


class Transport:
    """One protocol's tritonclient module and connection, for one server address."""

    def __init__(self, url: str, protocol: str, timeout_s: float, priority: int = 0) -> None:
        self.url, self.protocol, self.timeout_s = url, protocol, timeout_s
        self.priority = priority  # Triton's request priority (0: the model's default)
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
        self.module = module
        self.client = self.new_client()

    def new_client(self) -> Any:
        if self.protocol == "http":
            return self.module.InferenceServerClient(
                self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
            )
        return self.module.InferenceServerClient(self.url)

    def image_input(self, images: Sequence[bytes]) -> Any:
        """The IMAGE tensor of one request: the encoded files as one zero-padded UINT8 batch."""
        batch = pack_images(images)
        tensor = self.module.InferInput(contract.IMAGE, list(batch.shape), "UINT8")
        tensor.set_data_from_numpy(batch)
        return tensor

    def infer_kwargs(self, outputs: Sequence[str], parameters: Mapping[str, Any] | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"outputs": [self.module.InferRequestedOutput(name) for name in outputs]}
        if parameters:
            kwargs["parameters"] = dict(parameters)
        if self.priority:
            kwargs["priority"] = self.priority
        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout_s
        return kwargs

    def infer(
        self,
        client: Any,
        model: str,
        images: Sequence[bytes],
        outputs: Sequence[str],
        parameters: Mapping[str, Any] | None,
    ) -> Any:
        """One blocking request on ``client`` (this transport's, or one of a thread's own)."""
        return client.infer(model, [self.image_input(images)], **self.infer_kwargs(outputs, parameters))

    def failure(self, exc: BaseException) -> RequestError | ServerUnreachableError:
        """A failed request's exception as a per-request error, or as the end of the job."""
        return request_failure(exc, url=self.url, protocol=self.protocol, timeout_s=self.timeout_s)

    def submitter(
        self, model: str, outputs: Sequence[str], parameters: Mapping[str, Any] | None, concurrency: int
    ) -> tuple[Callable[[Sequence[bytes], Done], None], Callable[[], None]]:
        """``submit(images, done)`` for :func:`run_requests`, and a function that releases its resources.

        gRPC: ``async_infer`` with a callback (many requests on one channel). HTTP: ``concurrency``
        threads, each with its own connection, running blocking requests.
        """

        def deliver(done: Done, result: Any, error: BaseException | None) -> None:
            if error is not None:
                done(None, self.failure(error))
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
                    self.client.async_infer(
                        model,
                        [self.image_input(images)],
                        lambda result, error: deliver(done, result, error),
                        **self.infer_kwargs(outputs, parameters),
                    )
                except Exception as exc:  # noqa: BLE001 - delivered to the engine, which decides
                    deliver(done, None, exc)

            return submit_grpc, lambda: None

        local = threading.local()
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="triton-vision-http")
        connections: list[Any] = []

        def blocking(images: Sequence[bytes], done: Done) -> None:
            try:
                if not hasattr(local, "client"):
                    local.client = self.new_client()
                    connections.append(local.client)
                result = self.infer(local.client, model, images, outputs, parameters)
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
