"""Run the real ``tritonserver`` binary shipped in the ``nvidia-pytriton`` wheel.

The wheel carries the server, ``libtritonserver`` and its libraries, the Python backend and a
backend stub per Python version. ``serve`` assembles a backend directory from them plus the
project's Python-based ``onnxruntime`` and ``dali`` backends, then starts the binary with
``LD_LIBRARY_PATH`` at the wheel's libraries and this environment's interpreter first on ``PATH``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from triton_vision_models.errors import TritonVisionError

PYTHON_BASED_BACKENDS = ("onnxruntime", "dali")
BACKENDS_SOURCE = Path(__file__).resolve().parent.parent  # the repository's backends/


class RuntimeMissingError(TritonVisionError):
    """Something the local server needs is not installed or not prepared."""


class ServerFailedError(TritonVisionError):
    """tritonserver exited or did not become ready."""


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    libs: Path
    python_backend: Path
    stub: Path

    @classmethod
    def locate(cls) -> TritonInstall:
        spec = importlib.util.find_spec("pytriton")
        if spec is None or spec.origin is None:
            raise RuntimeMissingError(
                "the nvidia-pytriton wheel is not installed (it ships tritonserver): "
                "pip install 'triton-vision[server]'"
            )
        root = Path(spec.origin).parent / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        install = cls(
            binary=root / "bin" / "tritonserver",
            libs=Path(spec.origin).parent.parent / "nvidia_pytriton.libs",
            python_backend=root / "backends" / "python",
            stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
        )
        for path in (install.binary, install.libs, install.python_backend, install.stub):
            if not path.exists():
                raise RuntimeMissingError(f"{path} is missing from the nvidia-pytriton wheel (Python {version})")
        return install

    @staticmethod
    def check_numpy() -> None:
        """The stub's tensor conversion predates NumPy 2's ABI: with NumPy 2 installed, Python
        models receive corrupted input arrays (seen: every byte 0xFF). Refuse to start instead."""
        import numpy

        if int(numpy.__version__.split(".")[0]) >= 2:
            raise RuntimeMissingError(
                f"NumPy {numpy.__version__} is installed; the Python backend of tritonserver 2.51 needs "
                "NumPy < 2 (pip install 'numpy<2')"
            )

    def check_stub_libraries(self) -> None:
        """The stub links the system's libpython; say plainly when it is missing."""
        env = dict(os.environ, LD_LIBRARY_PATH=str(self.libs))
        result = subprocess.run(["ldd", str(self.stub)], capture_output=True, text=True, env=env, check=False)
        missing = [line.split()[0] for line in result.stdout.splitlines() if "not found" in line]
        if missing:
            version = f"{sys.version_info.major}.{sys.version_info.minor}"
            raise RuntimeMissingError(
                f"the Python backend stub needs {', '.join(missing)}; on Debian/Ubuntu: "
                f"apt-get install libpython{version}"
            )


def assemble_backend_dir(install: TritonInstall, target: Path) -> Path:
    """python/ (backend + stub) and the Python-based onnxruntime/ and dali/ backends."""
    python_dir = target / "python"
    shutil.copytree(install.python_backend, python_dir, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(install.stub, python_dir / "triton_python_backend_stub")
    for name in PYTHON_BASED_BACKENDS:
        source = BACKENDS_SOURCE / name / "model.py"
        if not source.is_file():
            raise RuntimeMissingError(f"{source} is missing: run serve from a triton-vision checkout")
        (target / name).mkdir()
        shutil.copy2(source, target / name / "model.py")
    return target


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class ServerOptions:
    model_repository: Path
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    log_verbose: int = 0
    allow_model_control: bool = False

    @property
    def http_url(self) -> str:
        return f"{self.client_host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.client_host}:{self.grpc_port}"

    @property
    def client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host


class LocalTritonServer:
    """A tritonserver child process; a context manager that stops it on exit."""

    def __init__(self, options: ServerOptions, install: TritonInstall | None = None) -> None:
        self.options = options
        self.install = install or TritonInstall.locate()
        self.process: subprocess.Popen | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None
        self.log_path: Path | None = None

    def command(self, backend_dir: Path) -> list[str]:
        o = self.options
        args = [
            str(self.install.binary),
            f"--model-repository={o.model_repository.resolve()}",
            f"--backend-directory={backend_dir}",
            f"--http-address={o.host}",
            f"--http-port={o.http_port}",
            f"--grpc-address={o.host}",
            f"--grpc-port={o.grpc_port}",
            f"--metrics-address={o.host}",
            f"--metrics-port={o.metrics_port}",
            f"--model-control-mode={'explicit' if o.allow_model_control else 'none'}",
            f"--log-verbose={o.log_verbose}",
            f"--backend-config=python,shm-region-prefix-name=tv{os.getpid()}_{o.grpc_port}_",
            "--exit-timeout-secs=10",
        ]
        if o.allow_model_control:
            args.append("--load-model=*")
        return args

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(self.install.libs), env.get("LD_LIBRARY_PATH")]))
        # The stub embeds the system's libpython, ignores PYTHONPATH and finds its prefix through
        # the first python3 on PATH: put this environment's interpreter first, so that its
        # site-packages (where triton-vision and its dependencies are installed) are used.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def start(self) -> LocalTritonServer:
        self.install.check_numpy()
        self.install.check_stub_libraries()
        if not self.options.model_repository.is_dir():
            raise RuntimeMissingError(f"model repository {self.options.model_repository} does not exist")
        self._workdir = tempfile.TemporaryDirectory(prefix="triton-vision-")
        workdir = Path(self._workdir.name)
        backend_dir = assemble_backend_dir(self.install, workdir / "backends")
        self.log_path = workdir / "tritonserver.log"
        with self.log_path.open("w") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.command(backend_dir),
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def is_ready(self) -> bool:
        url = f"http://{self.options.http_url}/v2/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return response.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerFailedError(
                    f"tritonserver exited with code {self.process.returncode} before it was ready:\n{self.log_tail()}"
                )
            if self.is_ready():
                return
            time.sleep(0.25)
        raise ServerFailedError(f"tritonserver was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> int | None:
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            code = self.process.returncode
            self.process = None
        if self._workdir is not None:
            self._keep_log()
            self._workdir.cleanup()
            self._workdir = None
        return code

    def _keep_log(self) -> None:
        """Copy the log out of the temporary directory before it goes."""
        if self.log_path is not None and self.log_path.exists():
            kept = Path(tempfile.gettempdir()) / f"triton-vision-{self.options.grpc_port}.log"
            shutil.copyfile(self.log_path, kept)
            self.log_path = kept

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
