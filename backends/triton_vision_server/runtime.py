"""Run the real ``tritonserver`` binary shipped in the ``nvidia-pytriton`` wheel.

The wheel carries the server, ``libtritonserver`` and its libraries, the Python backend and a
backend stub per Python version. ``serve`` assembles a backend directory from them plus the
project's Python-based ``onnxruntime`` and ``dali`` backends, then starts the binary with
``LD_LIBRARY_PATH`` at the wheel's libraries and this environment's interpreter first on ``PATH``.

Models are under explicit model control (every model loaded at start, ``--exit-on-error=false`` so
one model that fails to load leaves the others serving). The model-repository API (load, unload,
index) is restricted to requests carrying a secret header that only this process knows, so
clients cannot unload models but ``serve``'s supervisor can reload a model whose process died or
whose files changed. ``tritonserver`` is started with ``PR_SET_PDEATHSIG``: it is killed when the
process that started it dies, however that happens, and its model processes (the Python backend
stubs) exit when they find their parent gone.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from triton_vision_models.errors import TritonVisionError

PYTHON_BASED_BACKENDS = ("onnxruntime", "dali")
BACKENDS_SOURCE = Path(__file__).resolve().parent.parent  # the repository's backends/
ADMIN_HEADER = "triton-vision-admin-key"  # the header the restricted model-repository API expects
SHM_PREFIX = "tv"  # Python backend shared-memory regions: /dev/shm/tv<serve pid>_<grpc port>_...
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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
    # Secret of the restricted model-repository API; never printed, never leaves this process tree.
    admin_key: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)

    @property
    def http_url(self) -> str:
        return f"{self.client_host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.client_host}:{self.grpc_port}"

    @property
    def client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host


def die_with_parent() -> None:
    """``preexec_fn``: the kernel sends SIGKILL to the child when its parent dies (Linux; as PyTriton does)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def remove_stale_shm_regions(directory: Path = Path("/dev/shm")) -> list[Path]:
    """Shared-memory regions left by a server whose ``serve`` process no longer exists (e.g. after a
    SIGKILL): ``tv<pid>_...`` where no process ``pid`` runs. Regions of live servers are kept."""
    removed = []
    for path in directory.glob(f"{SHM_PREFIX}[0-9]*_*"):
        pid_text = path.name[len(SHM_PREFIX) :].split("_", 1)[0]
        if not pid_text.isdigit() or Path(f"/proc/{pid_text}").exists():
            continue
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed


@dataclass(frozen=True)
class ModelState:
    """One row of Triton's repository index."""

    name: str
    state: str  # READY, UNAVAILABLE, LOADING, UNLOADING, or "" when never loaded
    reason: str = ""

    @property
    def ready(self) -> bool:
        return self.state == "READY"


def ensemble_steps_from_file(repository: Path, name: str) -> list[str]:
    """The models an ensemble's ``config.pbtxt`` names in its steps ([] if it is no ensemble)."""
    from triton_vision_models.repository import ModelRepository

    return ModelRepository.load(repository).steps(name)


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
            "--model-control-mode=explicit",
            "--load-model=*",
            "--exit-on-error=false",
            "--strict-readiness=true",
            f"--log-verbose={o.log_verbose}",
            f"--backend-config=python,shm-region-prefix-name={SHM_PREFIX}{os.getpid()}_{o.grpc_port}_",
            "--exit-timeout-secs=10",
        ]
        if not o.allow_model_control:
            restriction = f"model-repository:{ADMIN_HEADER}={o.admin_key}"
            args += [f"--http-restricted-api={restriction}", f"--grpc-restricted-protocol={restriction}"]
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
        remove_stale_shm_regions()
        with self.log_path.open("w") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.command(backend_dir),
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: tritonserver and its model processes
                preexec_fn=die_with_parent,
            )
        return self

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _http(self, path: str, *, method: str = "GET", body: bytes | None = None, timeout: float = 1.0) -> int:
        """Status of an HTTP call (0 when the server cannot be reached)."""
        return self._http_json(path, method=method, body=body, timeout=timeout)[0]

    def _http_json(
        self, path: str, *, method: str = "GET", body: bytes | None = None, timeout: float = 1.0, admin: bool = False
    ) -> tuple[int, object]:
        headers = {ADMIN_HEADER: self.options.admin_key} if admin else {}
        request = urllib.request.Request(
            f"http://{self.options.http_url}{path}", method=method, data=body, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw) if raw else None
            except ValueError:
                return exc.code, raw.decode(errors="replace")
        except (OSError, ValueError):
            return 0, None

    def is_ready(self) -> bool:
        return self._http("/v2/health/ready") == 200

    def is_live(self) -> bool:
        return self._http("/v2/health/live") == 200

    def model_ready(self, name: str) -> bool:
        return self._http(f"/v2/models/{name}/ready") == 200

    def repository_index(self, timeout: float = 5.0) -> list[ModelState]:
        """Every model of the repository and its state (the restricted API, with the secret header)."""
        status, body = self._http_json("/v2/repository/index", method="POST", body=b"{}", timeout=timeout, admin=True)
        if status != 200 or not isinstance(body, list):
            raise ServerFailedError(f"repository index failed (HTTP {status}): {body}")
        return [ModelState(m.get("name", ""), m.get("state", ""), m.get("reason", "")) for m in body]

    def load_model(self, name: str, timeout: float = 300.0) -> tuple[bool, str]:
        """(Re)load a model: Triton builds new instances; the old ones serve until the new are ready."""
        status, body = self._http_json(
            f"/v2/repository/models/{name}/load", method="POST", body=b"{}", timeout=timeout, admin=True
        )
        return status == 200, "" if status == 200 else str(body.get("error", body) if isinstance(body, dict) else body)

    def unload_model(self, name: str, timeout: float = 60.0) -> tuple[bool, str]:
        """Unload a model (its ensembles become unavailable, the server stops reporting ready)."""
        status, body = self._http_json(
            f"/v2/repository/models/{name}/unload", method="POST", body=b"{}", timeout=timeout, admin=True
        )
        return status == 200, "" if status == 200 else str(body.get("error", body) if isinstance(body, dict) else body)

    def ensemble_steps(self, ensemble: str) -> list[str]:
        """The models an ensemble's steps name (from Triton's view of its config)."""
        status, body = self._http_json(f"/v2/models/{ensemble}/config", timeout=5.0)
        if status != 200 or not isinstance(body, dict):
            return []
        steps = body.get("ensemble_scheduling", {}).get("step", [])
        return list(dict.fromkeys(step.get("model_name", "") for step in steps if step.get("model_name")))

    def _check_running(self, what: str) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ServerFailedError(
                f"tritonserver exited with code {self.process.returncode} before {what}:\n{self.log_tail()}"
            )

    def wait_settled(self, timeout: float = 180.0) -> list[ModelState]:
        """Wait until tritonserver is live and no model is still loading; the repository index."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_running("it was ready")
            if self.is_live():
                try:
                    index = self.repository_index()
                except ServerFailedError:
                    index = []
                if index and not any(m.state in ("LOADING", "UNLOADING") for m in index):
                    return self.explain(index)
            time.sleep(0.25)
        raise ServerFailedError(f"tritonserver was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def explain(self, index: list[ModelState]) -> list[ModelState]:
        """Give a reason to models Triton never tried to load (an ensemble whose step failed)."""
        down = {m.name for m in index if not m.ready}
        explained = []
        for m in index:
            if not m.ready and not m.reason:
                failed = [
                    step for step in ensemble_steps_from_file(self.options.model_repository, m.name) if step in down
                ]
                reason = f"not loaded: it needs {', '.join(failed)}, which failed to load" if failed else "not loaded"
                m = ModelState(m.name, m.state or "UNAVAILABLE", reason)
            explained.append(m)
        return explained

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Every model loaded and the server ready; names the models that failed to load."""
        index = self.wait_settled(timeout)
        down = [m for m in index if not m.ready]
        if down:
            raise ServerFailedError(
                "models failed to load: " + "; ".join(f"{m.name}: {m.reason or m.state}" for m in down)
            )
        deadline = time.monotonic() + 30.0
        while not self.is_ready():
            self._check_running("it was ready")
            if time.monotonic() > deadline:
                raise ServerFailedError(f"tritonserver did not report ready:\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self, timeout: float = 20.0) -> int | None:
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            code = self.process.returncode
            self.kill_group()
            self.process = None
        if self._workdir is not None:
            self._keep_log()
            self._workdir.cleanup()
            self._workdir = None
        return code

    def kill_group(self) -> None:
        """SIGKILL what is left of tritonserver's process group (model processes it did not end)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

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
