"""What Triton says about its models: configs and inference statistics, as plain JSON.

The thin client sends requests; this reader asks the questions the page needs besides (a
model's config, every model's statistics, readiness) over the same protocol, and words a
server that does not answer as the client does (:class:`ServerUnreachableError`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from triton_vision_client.client import DEFAULT_URLS, PROTOCOLS
from triton_vision_client.errors import ClientError, ServerUnreachableError

# gRPC's status for "nothing answers at that address" (as tritonclient spells it).
UNAVAILABLE = "StatusCode.UNAVAILABLE"


class ServerAnswerError(ClientError):
    """The server answered a question with an error (the message is the server's)."""


class TritonReader:
    """Configs, statistics and readiness from one Triton, over gRPC or HTTP."""

    def __init__(self, url: str | None, protocol: str = "grpc", *, timeout_s: float = 30.0) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got '{protocol}'")
        self.protocol = protocol
        self.url = url or DEFAULT_URLS[protocol]
        self.timeout_s = timeout_s
        if protocol == "grpc":
            import tritonclient.grpc as grpc

            self._client: Any = grpc.InferenceServerClient(self.url)
        else:
            import tritonclient.http as http

            self._client = http.InferenceServerClient(self.url, connection_timeout=timeout_s, network_timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def _ask(self, call: Callable[[], Any]) -> Any:
        from tritonclient.utils import InferenceServerException

        try:
            return call()
        except InferenceServerException as exc:
            message = exc.message() or str(exc)
            if str(exc.status()) == UNAVAILABLE:
                raise ServerUnreachableError(self.url, self.protocol, message) from None
            raise ServerAnswerError(message) from None
        except Exception as exc:  # noqa: BLE001 - HTTP: refused, reset, unknown host, not an HTTP server
            raise ServerUnreachableError(self.url, self.protocol, f"{type(exc).__name__}: {exc}") from None

    def _grpc_kwargs(self) -> dict[str, Any]:
        return {"as_json": True, "client_timeout": self.timeout_s} if self.protocol == "grpc" else {}

    def check_live(self) -> None:
        """Raise :class:`ServerUnreachableError` unless a server answers and says it is live."""
        if not self._ask(self._client.is_server_live):
            raise ServerUnreachableError(self.url, self.protocol, "it answers but is not live")

    def ready(self, model: str) -> bool:
        try:
            return bool(self._ask(lambda: self._client.is_model_ready(model)))
        except ServerAnswerError:
            return False

    def config(self, model: str) -> dict[str, Any]:
        """The model's config as Triton's JSON (both protocols give the same keys)."""
        answer = self._ask(lambda: self._client.get_model_config(model, **self._grpc_kwargs()))
        return dict(answer.get("config", answer))

    def statistics(self) -> list[dict[str, Any]]:
        """Every loaded model's ``model_stats`` entry (one per name and version)."""
        answer = self._ask(lambda: self._client.get_inference_statistics("", **self._grpc_kwargs()))
        return list(answer.get("model_stats", []))
