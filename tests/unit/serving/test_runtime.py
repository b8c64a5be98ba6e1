"""The local runtime's pieces that need no running server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from triton_vision_authoring.errors import RuntimeMissingError
from triton_vision_serving.access import ADMIN_HEADER
from triton_vision_serving.install import PYTHON_BASED_BACKENDS, TritonInstall, assemble_backend_dir
from triton_vision_serving.runtime import LocalTritonServer
from triton_vision_serving.server_config import ServerOptions
from triton_vision_serving.shm import remove_stale_regions

FAKE = TritonInstall(binary=Path("/x/t"), libs=Path("/x/l"), python_backend=Path("/x/p"), stub=Path("/x/s"))


def test_command_binds_loopback_and_restricts_model_control_to_a_secret_header_by_default(tmp_path):
    options = ServerOptions(tmp_path)
    command = LocalTritonServer(options, install=FAKE).command(tmp_path / "backends")
    assert "--http-address=127.0.0.1" in command and "--grpc-address=127.0.0.1" in command
    assert "--metrics-address=127.0.0.1" in command
    assert "--model-control-mode=explicit" in command and "--load-model=*" in command
    assert "--exit-on-error=false" in command
    assert "--disable-auto-complete-config" in command  # the configs are complete: no extra process per model
    restriction = f"model-repository,shared-memory,logging,trace:{ADMIN_HEADER}={options.admin_key}"
    assert f"--http-restricted-api={restriction}" in command
    assert f"--grpc-restricted-protocol={restriction}" in command
    assert len(options.admin_key) >= 32 and options.admin_key != ServerOptions(tmp_path).admin_key
    assert options.admin_key not in repr(options)


def test_model_control_is_opened_to_clients_only_when_asked_and_the_other_admin_apis_stay_closed(tmp_path):
    options = ServerOptions(tmp_path, allow_model_control=True)
    command = LocalTritonServer(options, install=FAKE).command(tmp_path)
    assert "--model-control-mode=explicit" in command
    restriction = f"shared-memory,logging,trace:{ADMIN_HEADER}={options.admin_key}"
    assert [arg for arg in command if "restricted" in arg] == [
        f"--http-restricted-api={restriction}",
        f"--grpc-restricted-protocol={restriction}",
    ]


def test_the_open_and_restricted_apis_together_are_every_api_tritonserver_knows():
    from triton_vision_serving import access

    # tritonserver 2.51 --help: "Allowed APIs: health, metadata, inference, shared-memory,
    # model-config, model-repository, statistics, trace, logging"
    known = {"health", "metadata", "inference", "shared-memory", "model-config", "model-repository"}
    known |= {"statistics", "trace", "logging"}
    assert set(access.OPEN_APIS) | set(access.RESTRICTED_APIS) == known
    assert not set(access.OPEN_APIS) & set(access.RESTRICTED_APIS)


def test_container_launcher_execs_tritonserver_restricted_with_the_key_from_the_environment(monkeypatch, capsys):
    from triton_vision_serving import access

    calls = []
    monkeypatch.setattr(access.os, "execvpe", lambda file, args, env: calls.append((file, args)))
    monkeypatch.setenv(access.ADMIN_KEY_ENV, "s3cret")
    access.main(["tritonserver", "--model-repository=/models"])
    value = f"model-repository,shared-memory,logging,trace:{ADMIN_HEADER}=s3cret"
    assert calls == [
        (
            "tritonserver",
            [
                "tritonserver",
                "--model-repository=/models",
                "--grpc-infer-allocation-pool-size=0",
                f"--http-restricted-api={value}",
                f"--grpc-restricted-protocol={value}",
            ],
        )
    ]
    monkeypatch.delenv(access.ADMIN_KEY_ENV)
    access.main(["tritonserver", "--grpc-infer-allocation-pool-size=4"])  # the operator's choice stays
    assert calls[-1][1][:2] == ["tritonserver", "--grpc-infer-allocation-pool-size=4"]
    assert calls[-1][1].count("--grpc-infer-allocation-pool-size=0") == 0
    key = calls[-1][1][-1].rsplit("=", 1)[1]
    assert len(key) == 32 and key != "s3cret"
    assert capsys.readouterr().err.strip() == (
        "TRITON_VISION_ADMIN_KEY is not set: model-repository, shared-memory, logging, trace are closed to every client"
    )


def test_stale_shared_memory_regions_of_dead_servers_are_removed_and_live_ones_kept(tmp_path):
    import os

    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    stale = tmp_path / f"tv{dead_pid}_8001_abc"
    live = tmp_path / f"tv{os.getpid()}_8001_def"
    other = tmp_path / "unrelated"
    for path in (stale, live, other):
        path.write_bytes(b"x")
    assert remove_stale_regions(tmp_path) == [stale]
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
    from triton_vision_models.model_config import RequestData
    from triton_vision_models.provenance import ModelInfo, repository_ensembles

    assert repository_ensembles(MODEL_REPOSITORY) == [t.CLASSIFICATION, t.DETECTION, t.SEGMENTATION]
    query = RequestData({t.INFO_QUERY: np.array([t.INFO_ENSEMBLES.encode()], dtype=np.object_)})
    (answer,) = ModelInfo(MODEL_REPOSITORY)([query])
    assert answer[t.INFO_JSON][0] == b'["classification", "detection", "segmentation"]'


def test_a_restarted_servers_shared_memory_regions_are_its_own_and_removed_when_it_is_gone(tmp_path):
    from triton_vision_serving import shm

    first, second = shm.region_prefix(8001, 1), shm.region_prefix(8001, 2)
    assert first != second and first.startswith(f"tv{os.getpid()}_8001_")
    left = [tmp_path / f"{first}resnet18_0", tmp_path / f"{first}image_guard_0"]
    kept = tmp_path / f"{second}resnet18_0"
    for path in [*left, kept]:
        path.write_bytes(b"x")
    assert sorted(shm.remove_regions(first, tmp_path)) == sorted(left)
    assert kept.exists()


def test_exit_descriptions_name_the_signal_and_what_sends_it():
    from triton_vision_serving.runtime import describe_exit

    assert describe_exit(-9) == "killed by SIGKILL (the kernel's OOM killer, or kill -9)"
    assert describe_exit(-11) == "killed by SIGSEGV (a crash in native code)"
    assert describe_exit(1) == "exited with code 1"


def test_the_cause_of_a_log_is_its_last_error_line():
    from triton_vision_serving import logs

    text = "\n".join(
        [
            "I0101 10:00:00.000001 77 server.cc:674] loading",
            "E0101 10:00:01.000002 77 model_lifecycle.cc:641] \"failed to load 'faster_rcnn'\"",
            "E0101 10:00:02.000003 77 main.cc:249] failed to start GRPC service: Unavailable - Socket "
            "'127.0.0.1:8001' already in use",
            "I0101 10:00:02.100000 77 server.cc:305] Waiting for in-flight requests to complete.",
        ]
    )
    assert logs.cause(text) == "failed to start GRPC service: Unavailable - Socket '127.0.0.1:8001' already in use"
    assert logs.cause("just one line\n") == "just one line"
    assert logs.cause("") == "(the log is empty)"


def test_old_logs_are_pruned_to_the_newest_but_never_those_of_a_running_serve(tmp_path):
    import os

    from triton_vision_serving import logs

    dead = 2**22 + 4321  # above the default pid_max: no such process
    finished = [tmp_path / f"tritonserver-20250101-0000{i:02d}-8001-{dead}-1.log" for i in range(5)]
    running = tmp_path / f"tritonserver-20240101-000000-8001-{os.getpid()}-1.log"
    other = tmp_path / "notes.log"
    for age, path in enumerate([*finished, running, other]):
        path.write_text("x")
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
    os.utime(running, (1, 1))  # the oldest of all, and kept
    removed = logs.prune(tmp_path, keep=2)
    assert sorted(removed) == sorted(finished[:3])
    assert all(p.exists() for p in [*finished[3:], running, other])
