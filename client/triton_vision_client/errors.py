"""The client's exceptions: one root, :class:`ClientError`, and narrow subclasses."""

from __future__ import annotations


class ClientError(RuntimeError):
    """The server refused or failed a request; the message is the server's."""


class ServerUnreachableError(ClientError):
    """No server answers at the address (refused, reset, unknown host): the whole job stops."""

    def __init__(self, url: str, protocol: str, detail: str) -> None:
        self.url, self.protocol, self.detail = url, protocol, detail
        super().__init__(
            f"cannot reach a triton-vision server at {url} ({protocol}): {detail}. "
            "Is one running? Start it with `triton-vision serve`, or point --url at yours."
        )


class ModelNotServedError(ClientError):
    """The server answers but does not serve (or has not loaded) the ensemble a job needs."""

    def __init__(self, url: str, model: str) -> None:
        self.url, self.model = url, model
        super().__init__(
            f"the server at {url} does not serve the '{model}' ensemble (not in its repository, or not "
            "ready): serve a repository that has it, e.g. `triton-vision serve` from the project root"
        )
