"""The local runtime's pieces that need no running server."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_vision_server.runtime import (
    ADMIN_HEADER,
    PYTHON_BASED_BACKENDS,
    LocalTritonServer,
    RuntimeMissingError,
    ServerOptions,
    TritonInstall,
    assemble_backend_dir,
    remove_stale_shm_regions,
)

FAKE = TritonInstall(binary=Path("/x/t"), libs=Path("/x/l"), python_backend=Path("/x/p"), stub=Path("/x/s"))


def test_command_binds_loopback_and_restricts_model_control_to_a_secret_header_by_default(tmp_path):
    options = ServerOptions(tmp_path)
    command = LocalTritonServer(options, install=FAKE).command(tmp_path / "backends")
    assert "--http-address=127.0.0.1" in command and "--grpc-address=127.0.0.1" in command
    assert "--metrics-address=127.0.0.1" in command
    assert "--model-control-mode=explicit" in command and "--load-model=*" in command
    assert "--exit-on-error=false" in command
    restriction = f"model-repository:{ADMIN_HEADER}={options.admin_key}"
    assert f"--http-restricted-api={restriction}" in command
    assert f"--grpc-restricted-protocol={restriction}" in command
    assert len(options.admin_key) >= 32 and options.admin_key != ServerOptions(tmp_path).admin_key
    assert options.admin_key not in repr(options)


def test_model_control_is_open_to_clients_only_when_asked(tmp_path):
    command = LocalTritonServer(ServerOptions(tmp_path, allow_model_control=True), install=FAKE).command(tmp_path)
    assert "--model-control-mode=explicit" in command
    assert not any("restricted" in arg for arg in command)


def test_stale_shared_memory_regions_of_dead_servers_are_removed_and_live_ones_kept(tmp_path):
    import os

    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    stale = tmp_path / f"tv{dead_pid}_8001_abc"
    live = tmp_path / f"tv{os.getpid()}_8001_def"
    other = tmp_path / "unrelated"
    for path in (stale, live, other):
        path.write_bytes(b"x")
    assert remove_stale_shm_regions(tmp_path) == [stale]
    assert live.exists() and other.exists() and not stale.exists()


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


def test_model_info_lists_the_repositorys_ensembles_loaded_or_not(tmp_path):
    import numpy as np

    from tests.conftest import MODEL_REPOSITORY
    from triton_vision_models import tensors as t
    from triton_vision_models.provenance import ModelInfo, repository_ensembles
    from triton_vision_models.spec import RequestData

    assert repository_ensembles(MODEL_REPOSITORY) == [t.CLASSIFICATION, t.DETECTION, t.SEGMENTATION]
    query = RequestData({t.INFO_QUERY: np.array([t.INFO_ENSEMBLES.encode()], dtype=np.object_)})
    (answer,) = ModelInfo(MODEL_REPOSITORY)([query])
    assert answer[t.INFO_JSON][0] == b'["classification", "detection", "segmentation"]'
