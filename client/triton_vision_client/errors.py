"""The client's exceptions: :class:`ClientError` and narrow subclasses, under the project's one
root (:mod:`triton_vision_contract.errors`, where the whole tree is drawn)."""

from __future__ import annotations

from triton_vision_contract.errors import TritonVisionError, UsageError

__all__ = [
    "BadURLError",
    "ClientError",
    "EnsembleMismatchError",
    "ModelNotServedError",
    "ServerUnreachableError",
    "UsageError",
]


class ClientError(TritonVisionError, RuntimeError):
    """The server refused or failed a request; the message is the server's."""


class ServerUnreachableError(ClientError):
    """No server answers at the address (refused, reset, unknown host): the whole job stops.

    ``hint``, when the client found out more (the address answers the other protocol, the host
    does not resolve), replaces the generic advice.
    """

    def __init__(self, url: str, protocol: str, detail: str, hint: str | None = None) -> None:
        self.url, self.protocol, self.detail, self.hint = url, protocol, detail, hint
        super().__init__(
            hint
            or (
                f"cannot reach a triton-vision server at {url} ({protocol}): {detail}. "
                "Is one running? Start it with `triton-vision serve`, or point --url at yours."
            )
        )


class ModelNotServedError(ClientError):
    """The server answers but does not serve (or has not loaded) the ensemble a job needs;
    ``advice``, where the client found out what it has instead, replaces the generic advice."""

    def __init__(self, url: str, model: str, advice: str | None = None) -> None:
        self.url, self.model = url, model
        super().__init__(
            f"the server at {url} does not serve the '{model}' ensemble; {advice}"
            if advice
            else f"the server at {url} does not serve the '{model}' ensemble (not in its repository, or not "
            "ready): serve a repository that has it, e.g. `triton-vision serve` from the project root"
        )


class BadURLError(UsageError, ClientError):
    """The server address is not HOST:PORT (a scheme, no port)."""


class EnsembleMismatchError(UsageError, ClientError):
    """The ensemble cannot answer the call: another task's ensemble, or a batch above its maximum."""
