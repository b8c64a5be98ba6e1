"""What a local tritonserver is started with: :class:`ServerOptions` and its command line.

Models are under explicit model control (every model loaded at start, ``--exit-on-error=false``
so one model that fails to load leaves the others serving, strict readiness). The APIs a thin
client does not need are restricted to a random key that never leaves this process tree
(:mod:`triton_vision_serving.access`); ``serve``'s supervisor reloads models with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import triton_vision_contract as contract
from triton_vision_serving import access, memory
from triton_vision_serving.tracing import TraceSettings

EXIT_TIMEOUT_S = 10  # tritonserver's wait for in-flight requests on SIGTERM
SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}


def parse_size(text: str) -> int:
    """``256M`` -> 268435456: bytes, or K/M/G (powers of 1024, an optional trailing B or iB); ValueError
    naming the accepted forms otherwise."""
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (cleaned[:-1], cleaned[-1]) if cleaned[-1:] in ("K", "M", "G") else (cleaned, "")
    if not number.isdigit():
        raise ValueError(f"'{text}' is not a size: give bytes or a number with K, M or G (e.g. 256M)")
    return int(number) * SIZE_UNITS[unit]


def describe_size(size: int) -> str:
    for unit in ("G", "M", "K"):
        if size >= SIZE_UNITS[unit] and size % SIZE_UNITS[unit] == 0:
            return f"{size // SIZE_UNITS[unit]} {unit}iB"
    return f"{size} bytes"


@dataclass
class ServerOptions:
    model_repository: Path
    host: str = contract.DEFAULT_HOST
    http_port: int = contract.DEFAULT_HTTP_PORT
    grpc_port: int = contract.DEFAULT_GRPC_PORT
    metrics_port: int = contract.DEFAULT_METRICS_PORT
    log_verbose: int = 0
    allow_model_control: bool = False  # open the model-repository API to clients
    log_dir: Path | None = None  # None: logs.default_log_dir()
    cache_size: int = 0  # bytes of Triton's response cache (local); 0: no cache
    # each ensemble served in one process (the fused_ensemble backend: :mod:`.fusion`); False: each
    # composing model its own process, as Triton's ensemble scheduler runs them
    fuse: bool = True

    @property
    def fused(self) -> bool:
        """Whether ensembles run fused: asked for, and no traces (a trace shows each step's span)."""
        return self.fuse and self.trace is None

    trace: TraceSettings | None = None  # OpenTelemetry traces; None: none
    # serve's metrics endpoint holds metrics_port and adds its own metrics to Triton's, which
    # tritonserver then serves on this loopback port (None: tritonserver serves metrics_port itself).
    triton_metrics_port: int | None = None
    # Key of the restricted APIs; never printed, never leaves this process tree.
    admin_key: str = field(default_factory=access.new_key, repr=False)

    @classmethod
    def on_free_ports(cls, model_repository: Path, **options) -> ServerOptions:
        """Options for a server on three free loopback ports (the bench's and the tests' servers)."""
        from triton_vision_serving.ports import free_port

        return cls(model_repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(), **options)

    @property
    def client_host(self) -> str:
        return contract.DEFAULT_HOST if self.host in ("0.0.0.0", "") else self.host

    @property
    def http_url(self) -> str:
        return f"{self.client_host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.client_host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.client_host}:{self.metrics_port}/metrics"

    @property
    def port_options(self) -> dict[str, int]:
        """Each port by the ``serve`` option that sets it."""
        return {"--http-port": self.http_port, "--grpc-port": self.grpc_port, "--metrics-port": self.metrics_port}

    @property
    def restricted_apis(self) -> tuple[str, ...]:
        if self.allow_model_control:
            return tuple(api for api in access.RESTRICTED_APIS if api != access.MODEL_CONTROL_API)
        return access.RESTRICTED_APIS

    def metrics_arguments(self) -> list[str]:
        """Where tritonserver serves its metrics; with latency summaries (p50/p90/p95/p99 per model)."""
        if self.triton_metrics_port is not None:
            where = [f"--metrics-address={contract.DEFAULT_HOST}", f"--metrics-port={self.triton_metrics_port}"]
        else:
            where = [f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}"]
        return [*where, "--metrics-config=summary_latencies=true"]

    def cache_arguments(self, cache_dir: Path | None) -> list[str]:
        """The response cache: Triton's ``local`` cache of ``cache_size`` bytes (none when 0)."""
        if self.cache_size <= 0:
            return []
        where = [f"--cache-directory={cache_dir}"] if cache_dir is not None else []
        return [*where, f"--cache-config=local,size={self.cache_size}"]

    def arguments(
        self, *, backend_dir: Path, shm_prefix: str, cache_dir: Path | None = None, repository: Path | None = None
    ) -> list[str]:
        """tritonserver's arguments (without the binary); ``repository``: the one tritonserver is given
        (the fused one, :mod:`.fusion`) where it is not :attr:`model_repository`."""
        return [
            f"--model-repository={(repository or self.model_repository).resolve()}",
            f"--backend-directory={backend_dir}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            *self.metrics_arguments(),
            "--model-control-mode=explicit",
            "--load-model=*",
            "--exit-on-error=false",
            "--strict-readiness=true",
            # every config is complete (generated, `check`ed): the Python backend's extra process per
            # model that would complete them costs ~2 s of a 4-5 s start (classification repository,
            # measured), and one killed while it ran hung that model's load past serve's 240 s bound
            "--disable-auto-complete-config",
            f"--log-verbose={self.log_verbose}",
            f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
            f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
            *memory.GRPC_ARGS,
            *self.cache_arguments(cache_dir),
            *(self.trace.arguments() if self.trace is not None else []),
            *access.restriction_args(self.admin_key, self.restricted_apis),
        ]
