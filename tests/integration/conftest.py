"""Integration tier: the real tritonserver, started once per repository per session."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import MODEL_REPOSITORY, copy_model_dirs

SERVER_START_TIMEOUT_S = 240.0


@contextlib.contextmanager
def running_server(repository: Path) -> Iterator["object"]:
    """A LocalTritonServer on free loopback ports, ready, stopped afterwards."""
    from triton_vision_server.runtime import LocalTritonServer, ServerOptions, free_port

    options = ServerOptions(
        model_repository=repository,
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
    )
    server = LocalTritonServer(options)
    server.start()
    try:
        server.wait_ready(timeout=SERVER_START_TIMEOUT_S)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def classification_repository(tmp_path_factory) -> Path:
    """The classification ensemble with a ResNet-18 stand-in (random weights)."""
    from triton_vision_server import modelfiles
    from triton_vision_models import tensors as t

    repository = copy_model_dirs(
        tmp_path_factory.mktemp("classification_repo"),
        [t.CLASSIFICATION, t.CLASSIFICATION_PREPROCESS, t.CLASSIFIER, t.CLASSIFICATION_POSTPROCESS, t.MODEL_INFO],
    )
    modelfiles.prepare(repository, modelfiles.CATALOGUE[t.CLASSIFIER], stand_in=True)
    return repository


@pytest.fixture(scope="session")
def classification_server(classification_repository):
    with running_server(classification_repository) as server:
        yield server
