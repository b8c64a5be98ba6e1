"""Errors of the local serving runtime (serve, demo), under the project's one root
(:mod:`triton_vision_contract.errors`, where the whole tree is drawn).

A :class:`~triton_vision_contract.errors.UsageError` means the command line named something that
cannot be used (a repository that does not exist or has no ensemble, a port in use, a file that is
not a model): the commands print one ``error:`` line and exit 2. Every other error exits 1.
"""

from __future__ import annotations

from triton_vision_contract.errors import TritonVisionError, UsageError


class PortInUseError(UsageError):
    """A port the server must listen on is taken."""


class ServerFailedError(TritonVisionError):
    """tritonserver exited or did not become ready."""


class AdminRequestError(ServerFailedError):
    """A call of Triton's restricted admin API (repository index, load, unload) failed."""


class CrashLoopError(ServerFailedError):
    """tritonserver kept dying: ``serve`` stopped restarting it."""


class StopRequested(TritonVisionError):
    """SIGINT/SIGTERM arrived while ``serve`` was waiting (start-up, back-off)."""
