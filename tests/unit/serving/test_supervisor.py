"""serve's supervisor without a server: a fake admin API and fake process tables (tests/integration/
test_healing.py and test_chaos.py run the real one)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import MODEL_REPOSITORY
from triton_vision_serving import memory
from triton_vision_serving.admin import ModelState
from triton_vision_serving.memory import ModelPool


# -- serve's supervisor reloads a model whose pool grew ------------------------------------------------
class FakeAdmin:
    def __init__(self, index: list[ModelState] | None = None) -> None:
        self.loads: list[tuple[str, str | None]] = []
        self.unloads: list[str] = []
        self.index = index or []

    def load_model(self, name: str, timeout: float = 0, config: str | None = None) -> None:
        self.loads.append((name, config))

    def unload_model(self, name: str, timeout: float = 0) -> None:
        self.unloads.append(name)

    def repository_index(self) -> list[ModelState]:
        return self.index


def running_server(admin: FakeAdmin) -> Any:
    """A stand-in for a running LocalTritonServer on the project's repository, with ``admin`` as its API."""
    return SimpleNamespace(
        options=SimpleNamespace(model_repository=MODEL_REPOSITORY),
        served_repository=MODEL_REPOSITORY,
        overlay=None,
        refresh_model=lambda name: None,
        process=SimpleNamespace(pid=1),
        admin=admin,
    )


@pytest.fixture
def supervisor(monkeypatch, tmp_path):
    from triton_vision_serving import supervisor as module

    pools: list[list[ModelPool]] = []
    monkeypatch.setattr(memory, "model_pools", lambda processes, cmdlines, shm_dir: pools.pop(0))
    server = SimpleNamespace(
        options=SimpleNamespace(model_repository=MODEL_REPOSITORY),
        served_repository=MODEL_REPOSITORY,
        overlay=None,
        refresh_model=lambda name: None,
        process=None,
        admin=FakeAdmin(),
    )
    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    found = module.Supervisor(server, trim_above_bytes=128 << 20)
    monkeypatch.setattr(found, "_scan_processes", lambda: {})
    return SimpleNamespace(supervisor=found, pools=pools, clock=clock, admin=server.admin)


def scans(case, *sizes_mb: int, model: str = "image_guard", pid: int = 7) -> None:
    for size in sizes_mb:
        case.pools.append([ModelPool(model, pid, Path("/dev/shm/x"), size << 20)])
        case.supervisor.check_pools()
        case.clock[0] += 2.0


def test_a_grown_pool_is_returned_by_a_reload_once_it_has_stopped_growing(supervisor):
    scans(supervisor, 40, 300, 600)  # growing: a flood is on
    assert supervisor.admin.loads == []
    scans(supervisor, 600, 600)  # unchanged over two scans: it is over
    assert [name for name, _ in supervisor.admin.loads] == ["image_guard"]
    assert supervisor.supervisor.heals[-1]["cause"] == "shared-memory pool of 600 MB"


def reload_parameters(admin: FakeAdmin) -> list[str]:
    from triton_vision_serving.queues import RELOAD_PARAMETER

    return [json.loads(config or "{}")["parameters"][RELOAD_PARAMETER]["string_value"] for _, config in admin.loads]


def test_each_trim_asks_for_fresh_instances_with_the_models_own_config(supervisor):
    """Triton ignores a load of an unchanged model (its processes and pools stay): each trim's load
    carries the model's own config with a new value of a parameter no model reads."""
    scans(supervisor, 600, 600, 600)
    supervisor.clock[0] += 60
    scans(supervisor, 600, 600, 600, pid=8)
    assert len(supervisor.admin.loads) == 2
    first, second = reload_parameters(supervisor.admin)
    assert first != second
    config = json.loads(supervisor.admin.loads[0][1] or "{}")
    assert config["name"] == "image_guard" and config["backend"] == "python"


def test_a_pool_under_the_bound_is_left_alone_and_reloads_are_spaced(supervisor):
    scans(supervisor, 100, 100, 100, 100)
    assert supervisor.admin.loads == []
    scans(supervisor, 300, 300, 300)
    assert len(supervisor.admin.loads) == 1
    scans(supervisor, 300, 300, 300, model="image_guard", pid=8)  # the fresh process grew again at once
    assert len(supervisor.admin.loads) == 1  # within TRIM_COOLDOWN_S of the last reload
    scans(supervisor, 300, 300, 300, 300, 300, model="image_guard", pid=8)
    assert len(supervisor.admin.loads) == 2


def test_no_bound_means_no_reload(supervisor):
    supervisor.supervisor.trim_above_bytes = 0
    supervisor.supervisor.check_pools()  # reads no pool at all
    assert supervisor.admin.loads == [] and supervisor.pools == []


# -- processes that died before the supervisor saw them -------------------------------------------------
def test_a_model_process_that_died_while_tritonserver_started_is_healed_by_its_model_having_no_process(
    monkeypatch,
):
    from triton_vision_serving import supervisor as module

    # detection_infer, a nested ensemble, has no process either, and never needs one: reloading it
    # would refuse its requests while it loads ("has no available versions", seen in the chaos soak)
    names = ("detection", "detection_infer", "faster_rcnn", "image_guard")
    admin = FakeAdmin([ModelState(name, "READY", "") for name in names])
    server = running_server(admin)
    tables = {
        11: module.ModelProcess(11, "", True),  # a zombie: its command line is gone, its model unknown
        12: module.ModelProcess(12, "image_guard", False),
    }
    monkeypatch.setattr(module, "model_processes", lambda pid, repository: dict(tables))
    found = module.Supervisor(server)
    found.check_processes()
    assert admin.unloads == ["faster_rcnn"] and [name for name, _ in admin.loads] == ["faster_rcnn"]
    found.check_processes()  # the same zombie again: already acted on
    assert len(admin.loads) == 1


# -- the supervisor's own kills are not deaths to heal ---------------------------------------------------
def test_a_leftover_process_the_supervisor_killed_is_not_healed_a_second_time(monkeypatch):
    from triton_vision_serving import supervisor as module

    admin = FakeAdmin([ModelState("resnet18", "READY", "")])
    server = running_server(admin)
    tables = {
        21: module.ModelProcess(21, "resnet18", False),  # two instances
        22: module.ModelProcess(22, "resnet18", False),
    }
    monkeypatch.setattr(module, "model_processes", lambda pid, repository: dict(tables))
    monkeypatch.setattr(module, "STALE_PROCESS_GRACE_S", 0.0)
    killed: list[int] = []

    def kill(pid: int, sig: int) -> None:  # the old instance's process, still alive after the reload
        killed.append(pid)
        tables[pid] = module.ModelProcess(pid, "resnet18", True)  # now a zombie tritonserver did not reap

    monkeypatch.setattr(module.os, "kill", kill)
    found = module.Supervisor(server)
    found.check_processes()  # learns both processes
    tables[21] = module.ModelProcess(21, "resnet18", True)  # one dies
    found.check_processes()
    assert killed == [22] and admin.unloads == ["resnet18"] and len(admin.loads) == 1
    found.check_processes()  # 22 is a zombie now, by the supervisor's own hand
    found.check_processes()
    assert admin.unloads == ["resnet18"] and len(admin.loads) == 1
    assert [heal["cause"] for heal in found.heals] == ["process [21] died"]


# -- a model whose process died while it loaded is loaded again ------------------------------------------
DIED_WHILE_LOADING = "Internal: Stub process 'detection_postprocess_0_0' is not healthy."


class FlakyAdmin(FakeAdmin):
    """Loads fail with ``failures`` (Triton's reasons) in turn, then succeed and mark the model ready."""

    def __init__(self, index: list[ModelState], failures: list[str]) -> None:
        super().__init__(index)
        self.failures = failures

    def load_model(self, name: str, timeout: float = 0, config: str | None = None) -> None:
        from triton_vision_serving.errors import AdminRequestError

        self.loads.append((name, config))
        if self.failures:
            raise AdminRequestError(f"loading model '{name}' failed (HTTP 400): {self.failures.pop(0)}")
        self.index = [ModelState(s.name, "READY", "") if s.name == name else s for s in self.index]


def restarted(monkeypatch, failures: list[str], reason: str = DIED_WHILE_LOADING):
    """A supervisor taking stock after tritonserver started with detection_postprocess down for ``reason``."""
    from triton_vision_serving import supervisor as module

    index = [
        ModelState("detection", "UNAVAILABLE", ""),  # never tried: its step failed
        ModelState("detection_postprocess", "UNAVAILABLE", reason),
        ModelState("image_guard", "READY", ""),
    ]
    admin = FlakyAdmin(index, failures)
    server = running_server(admin)
    monkeypatch.setattr(module, "model_processes", lambda pid, repository: {})
    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    found = module.Supervisor(server)
    found.start()
    return SimpleNamespace(supervisor=found, admin=admin, clock=clock)


def retry_ticks(case, seconds: float) -> None:
    for _ in range(int(seconds / 0.25)):
        case.clock[0] += 0.25
        case.supervisor.check_retries()


def test_a_model_whose_process_died_while_it_loaded_is_loaded_again_and_its_ensemble_with_it(monkeypatch):
    case = restarted(monkeypatch, failures=[DIED_WHILE_LOADING])  # the first try fails the same way
    assert case.admin.loads == []
    retry_ticks(case, 0.75)
    assert case.admin.loads == []  # the first try waits LOAD_RETRY_DELAYS_S[0]
    retry_ticks(case, 0.5)
    assert [name for name, _ in case.admin.loads] == ["detection_postprocess"]
    retry_ticks(case, 2.0)  # the second try, after 2 s more, loads it, then the ensemble that waited
    assert [name for name, _ in case.admin.loads] == ["detection_postprocess", "detection_postprocess", "detection"]
    retry_ticks(case, 60.0)
    assert len(case.admin.loads) == 3 and all(state.ready for state in case.admin.index)


def test_loads_again_are_bounded_and_other_load_failures_wait_for_new_files(monkeypatch):
    from triton_vision_serving.supervisor import LOAD_RETRY_DELAYS_S

    case = restarted(monkeypatch, failures=[DIED_WHILE_LOADING] * 100)
    retry_ticks(case, 120.0)
    assert len(case.admin.loads) == len(LOAD_RETRY_DELAYS_S)  # then it stays down, and says why
    corrupt = restarted(monkeypatch, failures=[], reason="failed to load 'model.onnx': INVALID_PROTOBUF")
    retry_ticks(corrupt, 60.0)
    assert corrupt.admin.loads == []


def test_a_heal_whose_fresh_process_died_while_it_loaded_is_tried_again(monkeypatch):
    case = restarted(monkeypatch, failures=[])
    retry_ticks(case, 5.0)  # detection_postprocess and detection come back
    case.admin.loads.clear()
    case.admin.failures = [DIED_WHILE_LOADING]  # killed again, this time while the heal loads it
    assert case.supervisor.heal("detection_postprocess", cause="process [31] died", kind="process_died") is False
    retry_ticks(case, 1.25)
    assert [name for name, _ in case.admin.loads] == ["detection_postprocess", "detection_postprocess"]
    assert case.admin.unloads == ["detection_postprocess"]


def test_new_files_whose_load_lost_its_process_are_loaded_again(monkeypatch):
    from triton_vision_serving.supervisor import file_signature

    case = restarted(monkeypatch, failures=[])
    retry_ticks(case, 5.0)
    case.admin.loads.clear()
    case.admin.failures = [DIED_WHILE_LOADING]
    changed = MODEL_REPOSITORY / "faster_rcnn"
    case.supervisor._signatures["faster_rcnn"] = ()  # its files changed, and have been still for a scan
    case.supervisor._changed["faster_rcnn"] = file_signature(changed)
    case.supervisor.check_files()
    retry_ticks(case, 1.25)
    assert [name for name, _ in case.admin.loads] == ["faster_rcnn", "faster_rcnn"]
