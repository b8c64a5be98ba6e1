"""``triton-vision serve``: start tritonserver, keep it answering, restart it when it dies, stop on request.

Before anything starts, the repository must exist and hold an ensemble (clients call ensembles)
and the three ports must be free: each refusal is one line naming what to change (exit 2).

While it serves, the :class:`~.supervisor.Supervisor` heals dead model processes and reloads
changed model files. When **tritonserver itself dies** (the OOM killer, a crash, ``kill -9``),
``serve`` logs how it ended and the last error of its log, then starts it again on the same ports
with the same key after a back-off of :attr:`RestartPolicy.first_delay_s` doubling up to
:attr:`RestartPolicy.max_delay_s`; nothing listens meanwhile, so readiness is off. After
:attr:`RestartPolicy.max_crashes` deaths within :attr:`RestartPolicy.window_s` it gives up (exit 1)
instead of restarting forever. A first start that fails is not retried: it is reported at once.

SIGINT/SIGTERM stop it at any time, during start-up too. Ctrl-C (SIGINT) exits 130 whenever it
comes, as a shell reports an interrupted command; SIGTERM exits 130 during start-up and 0 once it
has served (a service stopped as asked: a container's or a unit's stop).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import triton_vision_contract as contract
from triton_vision_authoring import models as model_files
from triton_vision_authoring.errors import RepositoryUnusableError
from triton_vision_authoring.repository_option import missing_repository
from triton_vision_models.errors import ConfigError
from triton_vision_models.repository import ModelRepository
from triton_vision_serving import memory
from triton_vision_serving.admin import ModelState
from triton_vision_serving.errors import CrashLoopError, PortInUseError, ServerFailedError, StopRequested
from triton_vision_serving.memory import DEFAULT_TRIM_ABOVE_BYTES
from triton_vision_serving.metrics import MetricsEndpoint, ServeMetrics
from triton_vision_serving.ports import check_ports, free_port
from triton_vision_serving.queues import QueueBounds
from triton_vision_serving.runtime import LocalTritonServer
from triton_vision_serving.server_config import ServerOptions, describe_size
from triton_vision_serving.supervisor import TICK_S, Supervisor

LOG = logging.getLogger("triton_vision_serving.serve")
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C
STARTUP_STOP_TIMEOUT_S = 5.0  # a tritonserver still loading models gets this long after SIGTERM
PORTS_FREE_WAIT_S = 10.0  # after a death, how long a restart waits for the old ports to close


@dataclass(frozen=True)
class RestartPolicy:
    max_crashes: int = 5  # deaths within window_s after which serve gives up
    window_s: float = 300.0
    first_delay_s: float = 1.0
    max_delay_s: float = 16.0

    def describe(self) -> str:
        return f"{self.max_crashes} deaths within {self.window_s:.0f} s"


@dataclass
class CrashHistory:
    """When tritonserver died; :meth:`record` says how long to wait before the restart, or None: give up."""

    policy: RestartPolicy
    clock: Callable[[], float] = time.monotonic
    deaths: list[float] = field(default_factory=list)

    def record(self) -> float | None:
        now = self.clock()
        self.deaths = [t for t in self.deaths if now - t < self.policy.window_s] + [now]
        if len(self.deaths) >= self.policy.max_crashes:
            return None
        return min(self.policy.first_delay_s * 2 ** (len(self.deaths) - 1), self.policy.max_delay_s)


@dataclass
class ServeSettings:
    options: ServerOptions
    start_timeout_s: float = 240.0
    probe_interval_s: float = 60.0
    probe_timeout_s: float = 30.0
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    trim_above_bytes: int = DEFAULT_TRIM_ABOVE_BYTES  # a model process's shared-memory pool above this: reload it
    queue_bounds: QueueBounds = field(default_factory=QueueBounds)  # None fields: what each config says


def say(text: str, *, error: bool = False) -> None:
    print(text, file=sys.stderr if error else sys.stdout, flush=True)


def servable_repository(options: ServerOptions) -> ModelRepository:
    """The repository, read; refused when it does not exist or holds no ensemble."""
    path = options.model_repository
    try:
        repository = ModelRepository.load(path)
    except ConfigError:
        raise missing_repository(path) from None
    if not repository.ensembles:
        held = f"its models: {', '.join(sorted(repository.models))}, none an ensemble" if repository.models else ""
        if repository.unreadable:
            held += ("; " if held else "") + f"unreadable: {', '.join(sorted(repository.unreadable))}"
        raise RepositoryUnusableError(
            f"model repository {path.resolve()} has no ensemble ({held or 'it is empty'}): there is nothing "
            f"for a client to call; `triton-vision check {path}` says what it holds"
        )
    return repository


def report_model_files(repository: ModelRepository) -> None:
    """A line per ONNX model: where its file came from; stand-ins and missing files on stderr."""
    for row in model_files.prepared_models(repository):
        if not row.prepared:
            say(f"  {row.name}: NOT PREPARED (run `triton-vision models prepare`)", error=True)
        elif row.source is not None and row.source.is_stand_in:
            say(f"  WARNING: {row.name} is a {row.describe()}", error=True)
        else:
            say(f"  {row.name}: {row.describe()}")


class Serve:
    """One ``serve`` run; :meth:`run` returns its exit code."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.options = settings.options
        self.stop_requested = threading.Event()
        self.stop_signal: int | None = None  # the first signal that asked to stop
        self.server: LocalTritonServer | None = None
        self.probe_ensembles: list[str] = []
        self.metrics = ServeMetrics()
        self.endpoint: MetricsEndpoint | None = None

    # -- signals --------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
        self.stop_requested.set()

    def _wait(self, seconds: float) -> None:
        if self.stop_requested.wait(seconds):
            raise StopRequested("stopped while waiting to restart tritonserver")

    def _announce_fusion(self, server: LocalTritonServer) -> None:
        overlay = server.overlay
        if overlay is None:
            if not self.options.fuse:
                why = "--separate-steps"
            elif self.options.trace is not None:
                why = "--trace: a span for each step"
            else:
                why = "a GPU: each step runs where its config says"
            say(f"ensembles: each step its own model process ({why})")
            return
        if overlay.fused:
            say(f"fused (each ensemble's steps in one process): {', '.join(overlay.fused)}")
        for ensemble, why in sorted(overlay.kept.items()):
            say(f"separate steps: {ensemble}: {why}")

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> int:
        repository = servable_repository(self.options)
        say(f"model repository: {self.options.model_repository.resolve()}")
        say(f"ensembles: {', '.join(repository.ensembles)}")
        if self.options.cache_size > 0:
            cached = ", ".join(repository.cached_ensembles) or "none of its ensembles enables it"
            say(f"response cache: {describe_size(self.options.cache_size)} (cached: {cached})")
        if self.options.trace is not None:
            say(f"traces: {self.options.trace.describe()}")
        report_model_files(repository)
        self.probe_ensembles = [name for name in repository.ensembles if repository[name].task]
        check_ports(self.options.host, self.options.port_options)
        self.endpoint = MetricsEndpoint(self.options.host, self.options.metrics_port, self.metrics)
        self.endpoint.start()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._serve()
        except StopRequested:
            say("interrupted: stopping tritonserver ...")
            if self.server is not None:
                self.server.stop(timeout=STARTUP_STOP_TIMEOUT_S)
            say("stopped")
            return INTERRUPTED_EXIT_CODE
        finally:
            if self.server is not None:
                self.server.stop()
            self.endpoint.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _start(self, generation: int) -> LocalTritonServer:
        if generation > 1:
            self._wait_for_ports()
        # serve's endpoint holds the metrics port; tritonserver's metrics go to a fresh loopback port
        options = replace(self.options, triton_metrics_port=free_port())
        self.server = LocalTritonServer(options, generation=generation)
        self.server.start()
        if self.endpoint is not None:
            self.endpoint.triton_url = f"http://{contract.DEFAULT_HOST}:{options.triton_metrics_port}/metrics"
        say(f"tritonserver log: {self.server.log_path}")
        if generation == 1:
            say(f"memory allocator: {memory.allocator(self.server.install.environment())}")
        return self.server

    def _wait_for_ports(self) -> None:
        deadline = time.monotonic() + PORTS_FREE_WAIT_S
        while True:
            try:
                ports = {k: v for k, v in self.options.port_options.items() if k != "--metrics-port"}  # serve's own
                check_ports(self.options.host, ports)
                return
            except PortInUseError:
                if time.monotonic() > deadline:
                    raise
                self._wait(0.5)

    def _serve(self) -> int:
        from triton_vision_client.client import VisionClient
        from triton_vision_client.probe import send

        crashes = CrashHistory(self.settings.restart)
        generation, down_since = 0, None
        probe_client = VisionClient(
            self.options.grpc_url, "grpc", timeout_s=self.settings.probe_timeout_s, priority=contract.PROBE_PRIORITY
        )
        with probe_client:
            while True:
                generation += 1
                try:
                    server = self._start(generation)
                    server.wait_settled(self.settings.start_timeout_s, should_stop=self.stop_requested.is_set)
                    supervisor = Supervisor(
                        server,
                        probe=lambda ensemble: send(probe_client, ensemble),
                        probe_interval_s=self.settings.probe_interval_s,
                        probe_ensembles=self.probe_ensembles,
                        trim_above_bytes=self.settings.trim_above_bytes,
                        queue_bounds=self.settings.queue_bounds,
                        on_heal=self.metrics.heal,
                    )
                    index = supervisor.start()
                    pid = server.process.pid if server.process is not None else None
                    self.metrics.serving(pid, server.served_repository, [m.name for m in index])
                    if generation == 1:
                        self._announce_fusion(server)
                    self._announce(index, generation, down_since)
                    down_since = None
                    if self._supervise(server, supervisor):
                        interrupted = self.stop_signal == signal.SIGINT
                        say(f"{'interrupted: ' if interrupted else ''}stopping tritonserver ...")
                        server.stop()
                        say("stopped")
                        return INTERRUPTED_EXIT_CODE if interrupted else 0
                    cause = f"tritonserver {server.exit_report()}"
                    self.metrics.serving(None, self.options.model_repository)
                except (ServerFailedError, PortInUseError) as exc:
                    if generation == 1:
                        raise  # a first start that fails is reported, not retried
                    ended = self.server is not None and self.server.exited()
                    why = self.server.exit_report() if ended and self.server else str(exc).splitlines()[0]
                    cause = f"the restart of tritonserver failed: {why}"
                LOG.error("%s", cause)
                down_since = down_since or time.monotonic()
                if self.server is not None:
                    self.server.stop(timeout=STARTUP_STOP_TIMEOUT_S)
                delay = crashes.record()
                if delay is None:
                    policy = self.settings.restart
                    raise CrashLoopError(
                        f"tritonserver died {len(crashes.deaths)} times within {policy.window_s:.0f} s: serve gives "
                        f"up. The last time: {cause}"
                    )
                self.metrics.restarts.inc()
                LOG.warning(
                    "restarting tritonserver in %.0f s on the same ports (death %d; serve gives up at %s)",
                    delay,
                    len(crashes.deaths),
                    self.settings.restart.describe(),
                )
                self._wait(delay)

    def _supervise(self, server: LocalTritonServer, supervisor: Supervisor) -> bool:
        """Tick until a stop is requested (True) or tritonserver dies (False)."""
        while not self.stop_requested.is_set():
            if server.exited():
                return False
            supervisor.tick()
            self.stop_requested.wait(TICK_S)
        return True

    def _announce(self, index: list[ModelState], generation: int, down_since: float | None) -> None:
        ready = {m.name for m in index if m.ready}
        repository = ModelRepository.load(self.options.model_repository)
        up = [name for name in repository.ensembles if name in ready]
        if down_since is None:
            o = self.options
            say(f"ready: HTTP {o.http_url}  gRPC {o.grpc_url}  metrics {o.metrics_url}")
        else:
            say(f"tritonserver serving again {time.monotonic() - down_since:.1f} s after it died (start {generation})")
        say(f"serving: {', '.join(up) or 'no ensemble'}")
        for state in index:
            if not state.ready:
                say(f"DOWN: {state.name}: {state.reason or state.state}", error=True)
        if generation == 1:
            say("Ctrl-C stops the server.")
