"""The project's one error root, and its one usage error (standard library only).

Every error triton-vision raises on purpose derives from :class:`TritonVisionError`; each package
adds narrow subclasses that name what went wrong (model, tensor, expected against actual)::

    TritonVisionError
    ├── UsageError (also ValueError): the caller named something unusable; commands exit 2
    │   ├── triton_vision_client.errors: BadURLError, EnsembleMismatchError (also ClientError)
    │   ├── triton_vision_authoring.errors: RepositoryUnusableError
    │   ├── triton_vision_serving.errors: PortInUseError
    │   └── triton_vision_bench: BenchUsageError, PerfUsageError (PerfInputError)
    ├── triton_vision_models.errors: what the Python models raise inside Triton
    │   ├── ConfigError: a config or spec is unusable (add-model's SpecError, VerifyError)
    │   ├── ModelFileError, InferenceError
    │   └── InvalidInputError: InvalidParameterError, ImageRejectedError (answered INVALID_ARG)
    ├── triton_vision_client.errors.ClientError (also RuntimeError): the server refused or failed
    │   └── ServerUnreachableError, ModelNotServedError, RequestError, the UI's PlaygroundError
    ├── triton_vision_authoring.errors.RuntimeMissingError: something to install or prepare
    │   └── ExportToolsMissingError (torch and torchvision)
    ├── triton_vision_serving.errors: ServerFailedError (AdminRequestError, CrashLoopError), StopRequested
    └── triton_vision_bench: BenchError

Commands print one ``error:`` line for any of them: exit 2 for a :class:`UsageError`, else 1.
"""

from __future__ import annotations

USAGE_EXIT_CODE = 2
FAILURE_EXIT_CODE = 1


class TritonVisionError(Exception):
    """Root of every error raised on purpose by triton-vision."""


class UsageError(TritonVisionError, ValueError):
    """What the caller named cannot be used (exit 2): nothing was sent or started."""


def exit_code(error: BaseException) -> int:
    """A command's exit code for ``error``: 2 for a usage error, else 1."""
    return USAGE_EXIT_CODE if isinstance(error, UsageError) else FAILURE_EXIT_CODE
