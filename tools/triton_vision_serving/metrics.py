"""``serve``'s metrics endpoint: Triton's Prometheus metrics and serve's own, on ``--metrics-port``.

``serve`` listens on the metrics port itself; ``tritonserver`` serves its metrics on a loopback port
of its own (a fresh one at each start), and each scrape of ``/metrics`` gets Triton's text followed
by serve's counters, one target for a scraper. When tritonserver is down (dead, restarting) a scrape
still answers, with serve's metrics alone: ``triton_vision_tritonserver_up`` 0 and the restart counted.

serve's own metrics (prometheus_client):

- ``triton_vision_model_heals_total{model, cause}``: the supervisor loaded a model again; ``cause``
  one of :data:`HEAL_CAUSES`. Every model of the repository starts at 0 for every cause;
- ``triton_vision_tritonserver_restarts_total``: tritonserver died and serve started it again;
- ``triton_vision_tritonserver_up``: 1 while tritonserver answers, else 0;
- ``triton_vision_process_resident_bytes{process, model}``: resident memory of tritonserver
  (``process="tritonserver"``) and of each Python-based model's process (``process="model"``),
  read from ``/proc`` at each scrape.

The Python models count the requests they answer with an error by reason
(``triton_vision_request_errors_total``, :mod:`triton_vision_models.triton_adapter`); that counter
reaches the scraper through Triton's text, as it does from the container's tritonserver.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LOG = logging.getLogger("triton_vision_serving.metrics")
TRITON_SCRAPE_TIMEOUT_S = 5.0
# Why the supervisor loaded a model again (docs/reliability.md#healing-and-restarts).
HEAL_CAUSES = ("process_died", "probe_failed", "files_changed", "shm_pool")


class ProcessMemory(Collector):
    """Resident bytes of tritonserver and its model processes, read at each scrape."""

    def __init__(self, server: Callable[[], tuple[int, Path] | None]) -> None:
        self.server = server  # (tritonserver's pid, the repository) or None while none runs

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from triton_vision_serving import procfs
        from triton_vision_serving.supervisor import model_processes

        family = GaugeMetricFamily(
            "triton_vision_process_resident_bytes",
            "Resident memory of tritonserver and of each model process",
            labels=["process", "model"],
        )
        running = self.server()
        if running is not None:
            pid, repository = running
            stats = procfs.all_stats()
            if pid in stats:
                family.add_metric(["tritonserver", ""], stats[pid].rss_bytes)
            per_model: dict[str, int] = {}
            for child in model_processes(pid, repository).values():
                if not child.zombie and child.pid in stats:
                    per_model[child.model] = per_model.get(child.model, 0) + stats[child.pid].rss_bytes
            for model, rss in sorted(per_model.items()):
                family.add_metric(["model", model], rss)
        yield family


class ServeMetrics:
    """serve's own metrics, in a registry of their own."""

    def __init__(self) -> None:
        disable_created_metrics()  # a _created series per counter is noise on a dashboard
        self.registry = CollectorRegistry(auto_describe=True)
        self.heals = Counter(
            "triton_vision_model_heals",
            "Models the supervisor loaded again, by cause",
            ["model", "cause"],
            registry=self.registry,
        )
        self.restarts = Counter(
            "triton_vision_tritonserver_restarts",
            "Times tritonserver died and was started again",
            registry=self.registry,
        )
        self.up = Gauge("triton_vision_tritonserver_up", "1 while tritonserver answers", registry=self.registry)
        self._server: tuple[int, Path] | None = None
        self.registry.register(ProcessMemory(lambda: self._server))

    def serving(self, pid: int | None, repository: Path, models: Iterable[str] = ()) -> None:
        """tritonserver ``pid`` (None: none) serves ``repository``; its ``models`` start at 0 heals."""
        self._server = None if pid is None else (pid, repository)
        for model in models:
            for cause in HEAL_CAUSES:
                self.heals.labels(model=model, cause=cause)

    def heal(self, model: str, cause: str) -> None:
        self.heals.labels(model=model, cause=cause).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


class MetricsEndpoint:
    """``/metrics`` on serve's metrics port: Triton's text (from ``triton_url``, when it answers), then serve's."""

    def __init__(self, host: str, port: int, metrics: ServeMetrics) -> None:
        self.metrics = metrics
        self.triton_url: str | None = None
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404, "serve's metrics are at /metrics")
                    return
                body = endpoint.scrape()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def scrape(self) -> bytes:
        triton = b""
        if self.triton_url is not None:
            try:
                with urllib.request.urlopen(self.triton_url, timeout=TRITON_SCRAPE_TIMEOUT_S) as response:
                    triton = response.read()
            except OSError as exc:
                LOG.debug("tritonserver's metrics did not answer: %s", exc)
        self.metrics.up.set(1 if triton else 0)
        if triton and not triton.endswith(b"\n"):
            triton += b"\n"
        return triton + self.metrics.text()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
