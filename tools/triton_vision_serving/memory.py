"""What keeps the memory of a flood of big requests from staying in the server
(docs/reliability.md#bounded-bytes-and-memory).

Without these remedies, four concurrent gRPC requests of 32 rows x 8 MB to the classification
ensemble (each refused) left gigabytes held by the server afterwards (measured: see
docs/performance.md). Three causes, three remedies:

- **tritonserver's gRPC request pool**: Triton keeps up to ``--grpc-infer-allocation-pool-size``
  (default 8) request objects per handler for reuse, and a reused protobuf message keeps the
  capacity of its largest input: every big request that ever came stays allocated. Pool size 0
  (:data:`GRPC_ARGS`) frees a request's message with the request (+477 MB held after one 256 MB
  request; +62 MB with pool 0).
- **glibc malloc's per-thread arenas** keep the freed gRPC buffers in tritonserver (64 MB heaps
  left fully resident: +447 MB after the four requests). jemalloc, preloaded
  (:func:`allocator_environment`; Triton's own documentation recommends it), returns them within
  about a second: +16 MB.
- **the Python backend's shared-memory pool** of each model process grows to the largest inputs it
  held at once and never shrinks (Python backend 2.51): 256-768 MB for the guard after those four
  requests. ``serve``'s supervisor reloads a model whose pool is above a bound once it has stopped
  growing (:func:`model_pools` reads the pools); Triton builds the new instance beside the old one,
  so no request fails, and the old pool is removed with the old process.

Standard library only: the container's launcher (:mod:`.access`) uses it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

GRPC_ARGS = ("--grpc-infer-allocation-pool-size=0",)
JEMALLOC_NAMES = ("libjemalloc.so.2", "libjemalloc.so")
LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
)
# Return freed pages after a second (background purging threads), never keep "muzzy" pages.
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"
NO_JEMALLOC_ENV = "TRITON_VISION_NO_JEMALLOC"  # set (to anything): keep the system's malloc
# serve reloads a model whose process's pool is above this (0: never). Measured: classification
# traffic keeps each pool under 40 MB; one 32 x 8 MB request grows the guard's to 257-768 MB.
DEFAULT_TRIM_ABOVE_BYTES = 128 * 1024 * 1024


def find_jemalloc(dirs: tuple[str, ...] = LIBRARY_DIRS) -> Path | None:
    """The jemalloc shared library (Debian/Ubuntu: ``apt-get install libjemalloc2``), None if absent."""
    for directory in dirs:
        for name in JEMALLOC_NAMES:
            path = Path(directory) / name
            if path.is_file():
                return path
    return None


def allocator_environment(env: Mapping[str, str], jemalloc: Path | None = None) -> dict[str, str]:
    """``env`` with jemalloc preloaded (when installed and not turned off by :data:`NO_JEMALLOC_ENV`).

    A user's ``MALLOC_CONF`` and ``LD_PRELOAD`` entries are kept (jemalloc goes first)."""
    found = dict(env)
    if found.get(NO_JEMALLOC_ENV):
        return found
    library = jemalloc or find_jemalloc()
    if library is None:
        return found
    found["LD_PRELOAD"] = " ".join(filter(None, [str(library), found.get("LD_PRELOAD", "")]))
    found.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    return found


def allocator(env: Mapping[str, str]) -> str:
    """Which allocator an environment from :func:`allocator_environment` gives, in words."""
    preloaded = [entry for entry in env.get("LD_PRELOAD", "").split() if "jemalloc" in entry]
    if preloaded:
        return f"jemalloc ({preloaded[0]})"
    if env.get(NO_JEMALLOC_ENV):
        return f"the system's malloc ({NO_JEMALLOC_ENV} is set)"
    return "the system's malloc (install libjemalloc2 so that memory returns after floods of big requests)"


# -- the shared-memory pools of the model processes ------------------------------------------------
@dataclass(frozen=True)
class ModelPool:
    """One model process's shared-memory pool (the region named in its command line)."""

    model: str
    pid: int
    region: Path
    bytes: int  # memory the region holds (its allocated pages)


def region_bytes(path: Path) -> int:
    """Bytes a shared-memory region holds (tmpfs pages allocated; 0 if it is gone)."""
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return 0


def stub_region(args: list[str], shm_dir: Path) -> Path | None:
    """The shared-memory region of a Python backend stub, from its arguments (the second names it)."""
    if len(args) < 3 or "/" in args[2] or not args[2]:
        return None
    return shm_dir / args[2]


def model_pools(processes: Mapping[int, str], cmdlines: Mapping[int, list[str]], shm_dir: Path) -> list[ModelPool]:
    """The pool of each model process (``processes``: pid -> model; ``cmdlines``: pid -> arguments)."""
    pools = []
    for pid, model in sorted(processes.items()):
        region = stub_region(cmdlines.get(pid, []), shm_dir)
        if region is not None and model:
            pools.append(ModelPool(model, pid, region, region_bytes(region)))
    return pools
