"""Which of Triton's APIs are open to clients, and the key that opens the others.

Triton's *Secure Deployment Considerations* ask that only what clients need be reachable. A thin
client of this project (and perf_analyzer, Model Analyzer's measurements, the bench) needs
inference, health, metadata, model configs and statistics; it never needs to load or unload
models, register shared memory (system or CUDA), change log settings or start traces. Those are
restricted (``--http-restricted-api`` / ``--grpc-restricted-protocol``) to requests carrying the
header :data:`ADMIN_HEADER` with a key:

An operator's HTTP call sends ``triton-vision-admin-key: KEY``; over gRPC Triton expects the
metadata ``triton-grpc-protocol-triton-vision-admin-key: KEY``.

- ``triton-vision serve``: a random key only ``serve`` knows (its supervisor loads and unloads
  models with it); ``--allow-model-control`` opens model-repository to clients, nothing else;
- the container (``docker/Dockerfile``, compose, Kubernetes): ``python3 -m
  triton_vision_serving.access tritonserver ARGS...`` runs tritonserver with the restriction and the
  key from ``$TRITON_VISION_ADMIN_KEY`` (Kubernetes: a Secret), or a random key nobody knows when
  it is unset (the restricted APIs are then closed to everyone). The launcher also gives
  tritonserver what returns a flood's memory (:mod:`.memory`: jemalloc when the image has it, no
  gRPC request pool), as ``serve`` does.

Standard library only: the container installs the project with the ``client`` extra.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Sequence

ADMIN_HEADER = "triton-vision-admin-key"  # over HTTP
GRPC_ADMIN_HEADER = f"triton-grpc-protocol-{ADMIN_HEADER}"  # over gRPC Triton expects its prefix
ADMIN_KEY_ENV = "TRITON_VISION_ADMIN_KEY"
OPEN_APIS = ("health", "metadata", "inference", "model-config", "statistics")
MODEL_CONTROL_API = "model-repository"
RESTRICTED_APIS = (MODEL_CONTROL_API, "shared-memory", "logging", "trace")


def new_key() -> str:
    return secrets.token_hex(16)


def restriction_args(key: str, apis: Sequence[str] = RESTRICTED_APIS) -> list[str]:
    """tritonserver's flags restricting ``apis`` over HTTP and gRPC to requests with the key."""
    if not apis:
        return []
    value = f"{','.join(apis)}:{ADMIN_HEADER}={key}"
    return [f"--http-restricted-api={value}", f"--grpc-restricted-protocol={value}"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 -m triton_vision_serving.access tritonserver ARGS...``: exec it, restricted."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        print("usage: python3 -m triton_vision_serving.access tritonserver [ARGS...]", file=sys.stderr)
        return 2
    key = os.environ.get(ADMIN_KEY_ENV, "")
    if not key:
        print(
            f"{ADMIN_KEY_ENV} is not set: {', '.join(RESTRICTED_APIS)} are closed to every client",
            file=sys.stderr,
            flush=True,
        )
        key = new_key()
    from triton_vision_serving.memory import GRPC_ARGS, allocator_environment

    pool = [arg for arg in GRPC_ARGS if not any(a.startswith(arg.split("=")[0]) for a in args)]
    os.execvpe(args[0], [*args, *pool, *restriction_args(key)], allocator_environment(os.environ))
    return 0  # not reached: exec replaces this process


if __name__ == "__main__":
    raise SystemExit(main())
