"""`triton-vision serve` as a subprocess on free loopback ports, for the integration tests that need
the whole of serve (its supervisor, its restarts): started, waited for, its output collected, stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import children, stop

SERVE_START_TIMEOUT_S = 240.0


@dataclass
class Serve:
    """A `triton-vision serve` subprocess on free loopback ports; its output collected."""

    process: subprocess.Popen
    http_port: int
    grpc_port: int
    metrics_port: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    arrivals: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic() read, line), both streams

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def tritonserver_pid(self) -> int:
        (pid,) = children(self.process.pid)
        return pid

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.http_port}/v2/health/ready"
            with urllib.request.urlopen(url, timeout=2.0) as response:
                return response.status == 200
        except OSError:
            return False

    def log(self) -> str:
        return "".join(self.stdout + self.stderr)

    def arrived(self, *parts: str) -> float | None:
        """When serve printed the first line that holds every one of ``parts`` (None: not yet)."""
        return next((when for when, line in list(self.arrivals) if all(p in line for p in parts)), None)


def _pump(stream, sink: list[str], arrivals: list, event: threading.Event | None) -> None:
    for line in stream:
        sink.append(line)
        arrivals.append((time.monotonic(), line))
        if event is not None and line.startswith("Ctrl-C stops"):
            event.set()


@contextmanager
def serving(
    repository: Path,
    *extra: str,
    program: Sequence[str] = (sys.executable, "-m", "triton_vision_cli"),
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Serve]:
    """``program serve`` (default: this checkout's) on ``repository``, started in ``cwd`` with ``env``."""
    from triton_vision_serving.ports import free_port

    ports = [free_port() for _ in range(3)]
    command = [*program, "serve", "--model-repository", str(repository)]
    command += ["--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]), *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)
    serve = Serve(process, ports[0], ports[1], ports[2])
    started = threading.Event()
    threads = [
        threading.Thread(target=_pump, args=(process.stdout, serve.stdout, serve.arrivals, started), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, serve.stderr, serve.arrivals, None), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + SERVE_START_TIMEOUT_S
        while not started.wait(0.5):
            assert process.poll() is None, f"serve exited with {process.returncode}:\n{serve.log()}"
            assert time.monotonic() < deadline, f"serve did not start within {SERVE_START_TIMEOUT_S} s:\n{serve.log()}"
        yield serve
    finally:
        stop(process, signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=5)
