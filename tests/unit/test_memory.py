"""What returns a flood's memory (backends/triton_vision_server/memory.py): the allocator tritonserver
gets, its gRPC request pool, and serve's reload of a model whose shared-memory pool grew. The flood
itself runs in tests/integration/test_overload.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from triton_vision_server import memory
from triton_vision_server.memory import ModelPool


def test_jemalloc_is_preloaded_before_the_users_libraries_and_their_malloc_conf_is_kept(tmp_path):
    library = tmp_path / "libjemalloc.so.2"
    library.write_bytes(b"")
    env = memory.allocator_environment({"LD_PRELOAD": "/opt/mine.so"}, jemalloc=library)
    assert env["LD_PRELOAD"] == f"{library} /opt/mine.so"
    assert env["MALLOC_CONF"] == memory.JEMALLOC_CONF
    assert memory.allocator(env) == f"jemalloc ({library})"
    kept = memory.allocator_environment({"MALLOC_CONF": "narenas:1"}, jemalloc=library)
    assert kept["MALLOC_CONF"] == "narenas:1"


def test_without_jemalloc_or_when_turned_off_the_system_malloc_stays_and_serve_says_so(tmp_path):
    assert memory.find_jemalloc((str(tmp_path),)) is None
    off = memory.allocator_environment({memory.NO_JEMALLOC_ENV: "1"}, jemalloc=tmp_path / "libjemalloc.so.2")
    assert "LD_PRELOAD" not in off
    assert memory.allocator(off) == f"the system's malloc ({memory.NO_JEMALLOC_ENV} is set)"
    assert "install libjemalloc2" in memory.allocator({})


def test_tritonserver_runs_without_its_grpc_request_pool():
    from triton_vision_server.server_config import ServerOptions

    arguments = ServerOptions(Path("/models")).arguments(backend_dir=Path("/b"), shm_prefix="tv1_")
    assert "--grpc-infer-allocation-pool-size=0" in arguments


def test_a_stubs_pool_is_the_region_its_command_line_names_and_holds_what_was_written(tmp_path):
    region = tmp_path / "tv1_8001_1_abc"
    with region.open("wb") as handle:
        handle.truncate(64 << 20)  # sparse: a pool's size, not its memory
        handle.write(b"\x01" * (1 << 20))
    stub = ["/b/python/triton_python_backend_stub", "/repo/image_guard/1/model.py", region.name, "1048576"]
    (pool,) = memory.model_pools({41: "image_guard", 42: ""}, {41: stub, 42: stub}, tmp_path)
    assert (pool.model, pool.pid, pool.region) == ("image_guard", 41, region)
    assert 1 << 20 <= pool.bytes < 2 << 20
    assert memory.stub_region(["tritonserver"], tmp_path) is None
    assert memory.region_bytes(tmp_path / "gone") == 0


# -- serve's supervisor reloads a model whose pool grew ------------------------------------------------
class FakeAdmin:
    def __init__(self) -> None:
        self.loads: list[tuple[str, str | None]] = []

    def load_model(self, name: str, timeout: float = 0, config: str | None = None) -> None:
        self.loads.append((name, config))


@pytest.fixture
def supervisor(monkeypatch, tmp_path):
    from triton_vision_server import supervisor as module

    pools: list[list[ModelPool]] = []
    monkeypatch.setattr(memory, "model_pools", lambda processes, cmdlines, shm_dir: pools.pop(0))
    server = SimpleNamespace(options=SimpleNamespace(model_repository=tmp_path), process=None, admin=FakeAdmin())
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
    assert supervisor.admin.loads == [("image_guard", None)]
    assert supervisor.supervisor.heals[-1]["cause"] == "shared-memory pool of 600 MB"


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


# -- the probe: a refusal for load is an answer ---------------------------------------------------------
class BusyClient:
    def __init__(self, message: str) -> None:
        self.message = message

    def task(self, ensemble: str) -> str:
        return "classification"

    def classify(self, images, top_k=None, ensemble=None):
        from triton_vision_client.client import ClientError

        raise ClientError(self.message)


def test_a_probe_refused_for_load_says_busy_and_a_real_failure_still_raises():
    from triton_vision_client.client import ClientError
    from triton_vision_client.probe import send

    busy = BusyClient("in ensemble 'classification', [request id: <id_unknown>] Exceeds maximum queue size (...)")
    assert send(busy, "classification").startswith("busy: refused for load (in ensemble 'classification'")
    broken = BusyClient("Stub process 'image_guard_0_0' is not healthy.")
    with pytest.raises(ClientError, match="not healthy"):
        send(broken, "classification")


def test_a_probe_and_serves_probes_ask_for_the_probe_priority():
    import triton_vision_contract as contract
    from triton_vision_client.transport import Transport

    transport = Transport.__new__(Transport)
    transport.protocol, transport.priority, transport.timeout_s = "grpc", contract.PROBE_PRIORITY, 5.0
    transport.module = SimpleNamespace(InferRequestedOutput=lambda name: name)
    assert transport.infer_kwargs(["CLASS_IDS"], None)["priority"] == contract.PROBE_PRIORITY
    transport.priority = 0
    assert "priority" not in transport.infer_kwargs(["CLASS_IDS"], None)
