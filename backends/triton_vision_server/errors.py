"""Errors of the server tooling (serve, models, check, export-repo, ...), under the project's one root.

:class:`UsageError` and its subclasses mean the command line named something that cannot be
used (a repository that does not exist or has no ensemble, a port in use, a file that is not a
model): the commands print one ``error:`` line and exit 2. Every other :class:`TritonVisionError`
exits 1.
"""

from __future__ import annotations

from triton_vision_models.errors import TritonVisionError

USAGE_EXIT_CODE = 2
FAILURE_EXIT_CODE = 1


class UsageError(TritonVisionError):
    """What the command line names cannot be used (exit 2)."""


class RepositoryUnusableError(UsageError):
    """The model repository given does not exist, holds no such model, or has no ensemble."""


class PortInUseError(UsageError):
    """A port the server must listen on is taken."""


class RuntimeMissingError(TritonVisionError):
    """Something the local server needs is not installed or not prepared."""


class ServerFailedError(TritonVisionError):
    """tritonserver exited or did not become ready."""


class AdminRequestError(ServerFailedError):
    """A call of Triton's restricted admin API (repository index, load, unload) failed."""


class CrashLoopError(ServerFailedError):
    """tritonserver kept dying: ``serve`` stopped restarting it."""


class StopRequested(TritonVisionError):
    """SIGINT/SIGTERM arrived while ``serve`` was waiting (start-up, back-off)."""


def exit_code(error: TritonVisionError) -> int:
    return USAGE_EXIT_CODE if isinstance(error, UsageError) else FAILURE_EXIT_CODE
