"""A local ``tritonserver`` process: start, stop, its log, how it ended.

The binary ships in the ``nvidia-pytriton`` wheel (:mod:`.install`); its command line comes from
:class:`~.server_config.ServerOptions`; :mod:`.readiness` waits for its models and
:class:`~.admin.AdminClient` talks to it. ``tritonserver`` is started with ``PR_SET_PDEATHSIG``:
it is killed when the process that started it dies, however that happens, and its model processes
(the Python backend stubs) exit when they find their parent gone. It runs in a process group of
its own with its model processes; :meth:`LocalTritonServer.stop` ends the whole group and removes
the shared-memory regions a killed server leaves.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from triton_vision_authoring.errors import RuntimeMissingError
from triton_vision_serving import fusion, logs, readiness, shm
from triton_vision_serving.admin import AdminClient, ModelState
from triton_vision_serving.errors import ServerFailedError
from triton_vision_serving.install import TritonInstall, assemble_backend_dir
from triton_vision_serving.ports import free_port
from triton_vision_serving.server_config import ServerOptions

# Tools import these from here (the bench); each is defined in the module named.
__all__ = ["LocalTritonServer", "ModelState", "RuntimeMissingError", "ServerOptions", "free_port", "describe_exit"]

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_TIMEOUT_S = 20.0


def die_with_parent() -> None:
    """``preexec_fn``: the kernel sends SIGKILL to the child when its parent dies (Linux; as PyTriton does)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


SIGNAL_HINTS = {
    signal.SIGKILL: "the kernel's OOM killer, or kill -9",
    signal.SIGSEGV: "a crash in native code",
    signal.SIGABRT: "an abort in native code",
    signal.SIGBUS: "a crash in native code",
}


def describe_exit(returncode: int) -> str:
    """``exited with code 1`` or ``killed by SIGKILL (the kernel's OOM killer, or kill -9)``."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        sig = signal.Signals(-returncode)
    except ValueError:
        return f"killed by signal {-returncode}"
    hint = SIGNAL_HINTS.get(sig)
    return f"killed by {sig.name}" + (f" ({hint})" if hint else "")


class LocalTritonServer:
    """A tritonserver child process; a context manager that stops it on exit.

    ``generation`` counts the starts of one ``serve`` on the same ports (its log and
    shared-memory regions are its own).
    """

    def __init__(self, options: ServerOptions, install: TritonInstall | None = None, *, generation: int = 1) -> None:
        self.options = options
        self.install = install or TritonInstall.locate()
        self.generation = generation
        self.shm_prefix = shm.region_prefix(options.grpc_port, generation)
        self.admin = AdminClient(options.http_url, options.admin_key)
        self.process: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.log_path: Path | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None
        self.overlay: fusion.Overlay | None = None  # the fused repository tritonserver is given

    @property
    def served_repository(self) -> Path:
        """The repository tritonserver loads: the fused one (:mod:`.fusion`) or the model repository."""
        return self.overlay.path if self.overlay is not None else self.options.model_repository

    def command(self, backend_dir: Path) -> list[str]:
        arguments = self.options.arguments(
            backend_dir=backend_dir,
            shm_prefix=self.shm_prefix,
            cache_dir=self.install.caches,
            repository=self.served_repository,
        )
        return [str(self.install.binary), *arguments]

    def refresh_model(self, name: str) -> None:
        """Bring the fused repository's entry for ``name`` up to date with the model repository."""
        if self.overlay is not None:
            fusion.refresh(self.overlay, name)

    def start(self) -> LocalTritonServer:
        self.install.check_numpy()
        self.install.check_stub_libraries()
        if not self.options.model_repository.is_dir():
            raise RuntimeMissingError(f"model repository {self.options.model_repository} does not exist")
        log_dir = self.options.log_dir or logs.default_log_dir()
        log_dir.mkdir(parents=True, exist_ok=True)
        logs.prune(log_dir)
        self.log_path = logs.new_log_path(log_dir, self.options.grpc_port, self.generation)
        self._workdir = tempfile.TemporaryDirectory(prefix="triton-vision-")
        backend_dir = assemble_backend_dir(self.install, Path(self._workdir.name) / "backends")
        if self.options.fused and not fusion.gpu_present():
            self.overlay = fusion.build_overlay(
                self.options.model_repository,
                Path(self._workdir.name) / "repository",
                cached=self.options.cache_size > 0,
            )
        shm.remove_stale_regions()
        with self.log_path.open("w") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.command(backend_dir),
                env=self.install.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: tritonserver and its model processes
                preexec_fn=die_with_parent,
            )
        return self

    # -- state ----------------------------------------------------------------------------------
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exited(self) -> bool:
        """It was started and has exited (not stopped by :meth:`stop`)."""
        return self.process is not None and self.process.poll() is not None

    def log_tail(self, lines: int = 40) -> str:
        return logs.tail(self.log_path, lines)

    def exit_report(self) -> str:
        """How it ended and what the end of its log says, e.g. ``killed by SIGKILL (...); its log ends: ...``."""
        code = self.process.returncode if self.process is not None else self.returncode
        how = describe_exit(code) if code is not None else "is not running"
        return f"{how}; its log ends: {logs.cause(self.log_tail(logs.CAUSE_LINES))} (log: {self.log_path})"

    def check_running(self, what: str) -> None:
        if self.exited():
            raise ServerFailedError(f"tritonserver {self.exit_report()}, before {what}:\n{self.log_tail()}")

    def is_ready(self) -> bool:
        return self.admin.is_ready()

    def wait_settled(self, timeout: float = 180.0, should_stop: Callable[[], bool] | None = None) -> list[ModelState]:
        return readiness.wait_settled(self, timeout, should_stop or (lambda: False))

    def wait_ready(self, timeout: float = 180.0, should_stop: Callable[[], bool] | None = None) -> None:
        readiness.wait_ready(self, timeout, should_stop or (lambda: False))

    # -- stopping -------------------------------------------------------------------------------
    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, SIGKILL after ``timeout``; then the rest of its process group and its
        shared-memory regions. Its exit code (negative: the signal), None if never started."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.returncode = self.process.returncode
            self.kill_group()
            shm.remove_regions(self.shm_prefix)
            self.process = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
            self.overlay = None
        return self.returncode

    def kill_group(self) -> None:
        """SIGKILL what is left of tritonserver's process group (model processes it did not end)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> LocalTritonServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
