"""Closed by default: over HTTP and gRPC, a client without the admin key cannot register shared
memory (system or CUDA), change the log settings or the trace settings, while inference,
statistics and model configs keep working. With the key each call is accepted, so the refusals are
the restriction's, not a broken request's. The regions and settings used are this test's own: the
shared server's other users see no change (the settings written back are the ones read)."""

from __future__ import annotations

from multiprocessing import shared_memory

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.support.images import accepted_images
from triton_vision_client.client import VisionClient
from triton_vision_models import tensors as t
from triton_vision_serving.access import ADMIN_HEADER, GRPC_ADMIN_HEADER

pytestmark = pytest.mark.integration

REFUSED = {
    "http": "[403] This API is restricted, expecting header 'triton-vision-admin-key'",
    "grpc": "This protocol is restricted, expecting header 'triton-grpc-protocol-triton-vision-admin-key'",
}


def clients(server, protocol: str):
    if protocol == "http":
        return httpclient.InferenceServerClient(server.options.http_url), {ADMIN_HEADER: server.options.admin_key}
    return grpcclient.InferenceServerClient(server.options.grpc_url), {GRPC_ADMIN_HEADER: server.options.admin_key}


def refused(call) -> str:
    with pytest.raises(InferenceServerException) as error:
        call()
    return str(error.value)


@pytest.fixture
def region():
    """A real POSIX shared-memory region: registering it would succeed were the API open."""
    memory = shared_memory.SharedMemory(create=True, size=64)
    yield memory.name
    memory.close()
    memory.unlink()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_without_the_key_shared_memory_log_and_trace_settings_are_refused_and_inference_works(
    classification_server, chelsea_rgb, region, protocol
):
    client, admin = clients(classification_server, protocol)
    name = f"access_test_{protocol}"
    key = f"/{region}"
    assert REFUSED[protocol] in refused(lambda: client.register_system_shared_memory(name, key, 64))
    handle = b"\0" * 64 if protocol == "grpc" else "AAAA"
    assert REFUSED[protocol] in refused(lambda: client.register_cuda_shared_memory(name, handle, 0, 64))
    assert REFUSED[protocol] in refused(lambda: client.update_log_settings({"log_verbose_level": 1}))
    assert REFUSED[protocol] in refused(lambda: client.update_trace_settings(settings={"trace_rate": "1"}))

    # what a client needs stays open
    with VisionClient(classification_server.options.grpc_url, "grpc") as vision:
        (answer,) = vision.classify([accepted_images(chelsea_rgb)["baseline JPEG"]], top_k=2)
    assert len(answer.class_ids) == 2
    assert client.get_model_config(t.CLASSIFICATION) is not None
    assert client.get_inference_statistics(t.CLASSIFICATION) is not None

    # with the key the same calls go through (then are undone)
    client.register_system_shared_memory(name, key, 64, headers=admin)
    client.unregister_system_shared_memory(name, headers=admin)
    if protocol == "http":
        verbose = client.get_log_settings(headers=admin)["log_verbose_level"]
    else:
        verbose = client.get_log_settings(headers=admin, as_json=True)["settings"]["log_verbose_level"]["uint32_param"]
    client.update_log_settings({"log_verbose_level": int(verbose)}, headers=admin)
    client.close()
