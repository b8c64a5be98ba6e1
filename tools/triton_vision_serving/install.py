"""Where the local ``tritonserver`` comes from: the ``nvidia-pytriton`` wheel, and the backend
directory ``serve`` assembles from it.

The wheel carries the server, ``libtritonserver`` and its libraries, the Python backend and a
backend stub per Python version. The backend directory holds that Python backend and stub plus
this project's Python-based ``onnxruntime`` and ``dali`` backends (``backends/<name>/model.py``,
package data of ``triton_vision_backends`` in the wheel: Triton loads ``<backend-dir>/<name>/model.py``
for a backend without a shared library).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from triton_vision_authoring.errors import RuntimeMissingError
from triton_vision_serving.memory import allocator_environment

PYTHON_BASED_BACKENDS = ("onnxruntime", "dali", "fused_ensemble")
BACKENDS_PACKAGE = "triton_vision_backends"  # backends/ in a checkout, package data in the wheel


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    libs: Path
    python_backend: Path
    stub: Path
    caches: Path | None = None  # Triton's cache implementations (caches/local: the response cache)

    @classmethod
    def locate(cls) -> TritonInstall:
        spec = importlib.util.find_spec("pytriton")
        if spec is None or spec.origin is None:
            raise RuntimeMissingError(
                "the nvidia-pytriton wheel is not installed (it ships tritonserver): "
                "pip install 'triton-vision[server]'"
            )
        root = Path(spec.origin).parent / "tritonserver"
        install = cls(
            binary=root / "bin" / "tritonserver",
            libs=Path(spec.origin).parent.parent / "nvidia_pytriton.libs",
            python_backend=root / "backends" / "python",
            stub=root / "python_backend_stubs" / python_version() / "triton_python_backend_stub",
            caches=root / "caches",
        )
        for path in (install.binary, install.libs, install.python_backend, install.stub):
            if not path.exists():
                raise RuntimeMissingError(
                    f"{path} is missing from the nvidia-pytriton wheel (Python {python_version()})"
                )
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
            raise RuntimeMissingError(
                f"the Python backend stub needs {', '.join(missing)}; on Debian/Ubuntu: "
                f"apt-get install libpython{python_version()}"
            )

    def environment(self) -> dict[str, str]:
        """tritonserver's environment: the wheel's libraries, and this interpreter first on PATH."""
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(self.libs), env.get("LD_LIBRARY_PATH")]))
        # The stub embeds the system's libpython, ignores PYTHONPATH and finds its prefix through
        # the first python3 on PATH: put this environment's interpreter first, so that its
        # site-packages (where triton-vision and its dependencies are installed) are used.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.setdefault("OMP_NUM_THREADS", "1")
        return allocator_environment(env)


def assemble_backend_dir(install: TritonInstall, target: Path) -> Path:
    """python/ (backend + stub) and the Python-based onnxruntime/ and dali/ backends."""
    python_dir = target / "python"
    shutil.copytree(install.python_backend, python_dir, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(install.stub, python_dir / "triton_python_backend_stub")
    backends = importlib.resources.files(BACKENDS_PACKAGE)
    for name in PYTHON_BASED_BACKENDS:
        source = backends / name / "model.py"
        if not source.is_file():
            raise RuntimeMissingError(f"{BACKENDS_PACKAGE}/{name}/model.py is missing: reinstall triton-vision")
        (target / name).mkdir()
        (target / name / "model.py").write_bytes(source.read_bytes())
    return target
