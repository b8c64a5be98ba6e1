"""What returns a flood's memory (backends/triton_vision_server/memory.py): the allocator tritonserver
gets, its gRPC request pool, and serve's reload of a model whose shared-memory pool grew. The flood
itself runs in tests/integration/test_overload.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from triton_vision_serving import memory


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
    from triton_vision_serving.server_config import ServerOptions

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
