"""The local runtime's pieces that need no running server."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_vision_server.runtime import (
    PYTHON_BASED_BACKENDS,
    LocalTritonServer,
    RuntimeMissingError,
    ServerOptions,
    TritonInstall,
    assemble_backend_dir,
)


def test_command_binds_loopback_and_keeps_model_control_off_by_default(tmp_path):
    fake = TritonInstall(
        binary=Path("/x/tritonserver"), libs=Path("/x/libs"), python_backend=Path("/x/py"), stub=Path("/x/stub")
    )
    command = LocalTritonServer(ServerOptions(tmp_path), install=fake).command(tmp_path / "backends")
    assert "--http-address=127.0.0.1" in command and "--grpc-address=127.0.0.1" in command
    assert "--metrics-address=127.0.0.1" in command
    assert "--model-control-mode=none" in command
    assert not any(arg.startswith("--load-model") for arg in command)


def test_model_control_is_explicit_only_when_asked(tmp_path):
    fake = TritonInstall(binary=Path("/x/t"), libs=Path("/x/l"), python_backend=Path("/x/p"), stub=Path("/x/s"))
    command = LocalTritonServer(ServerOptions(tmp_path, allow_model_control=True), install=fake).command(tmp_path)
    assert "--model-control-mode=explicit" in command and "--load-model=*" in command


def test_backend_dir_holds_the_python_backend_the_stub_and_the_python_based_backends(tmp_path):
    install = TritonInstall.locate()
    target = assemble_backend_dir(install, tmp_path / "backends")
    assert (target / "python" / "libtriton_python.so").is_file()
    assert (target / "python" / "triton_python_backend_stub").is_file()
    for name in PYTHON_BASED_BACKENDS:
        assert (target / name / "model.py").is_file()


def test_serve_refuses_numpy_2_naming_the_fix(monkeypatch):
    import numpy

    monkeypatch.setattr(numpy, "__version__", "2.5.2")
    with pytest.raises(RuntimeMissingError, match=r"NumPy 2.5.2 .* needs NumPy < 2"):
        TritonInstall.check_numpy()
