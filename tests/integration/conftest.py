"""Integration tier: the real tritonserver, started once per repository per session."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ensemble_repository
from triton_vision_server.runtime import LocalTritonServer

SERVER_START_TIMEOUT_S = 240.0


@contextlib.contextmanager
def running_server(repository: Path, *, allow_model_control: bool = False) -> Iterator[LocalTritonServer]:
    """A LocalTritonServer on free loopback ports, ready, stopped afterwards (``allow_model_control``:
    clients may load and unload models, as with ``serve --allow-model-control``)."""
    from triton_vision_server.ports import free_port
    from triton_vision_server.server_config import ServerOptions

    options = ServerOptions(
        model_repository=repository,
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        allow_model_control=allow_model_control,
    )
    server = LocalTritonServer(options)
    server.start()
    try:
        server.wait_ready(timeout=SERVER_START_TIMEOUT_S)
        yield server
    finally:
        server.stop()


def serve_fixture(repository_fixture: str):
    """A session fixture serving the repository that ``repository_fixture`` builds."""

    @pytest.fixture(scope="session")
    def server(request):
        with running_server(request.getfixturevalue(repository_fixture)) as running:
            yield running

    return server


@pytest.fixture(scope="session")
def classification_repository(tmp_path_factory) -> Path:
    """The classification ensemble with a ResNet-18 stand-in (random weights)."""
    from triton_vision_models import tensors as t
    from triton_vision_server import modelfiles

    repository = ensemble_repository(tmp_path_factory.mktemp("classification_repo"), t.CLASSIFICATION)
    modelfiles.prepare(repository, modelfiles.CATALOGUE[t.CLASSIFIER], stand_in=True)
    return repository


# -- segmentation -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def segmentation_known_answer_repository(tmp_path_factory) -> Path:
    """The segmentation ensemble with the colour-rule FCN (red -> person, green -> cat)."""
    import onnx

    from tests.segmentation_support import colour_rule_fcn
    from triton_vision_models import tensors as t

    repository = ensemble_repository(tmp_path_factory.mktemp("segmentation_colour_repo"), t.SEGMENTATION)
    onnx.save(colour_rule_fcn(), str(repository / t.SEGMENTER / "1" / "model.onnx"))
    return repository


@pytest.fixture(scope="session")
def segmentation_fcn_repository(tmp_path_factory) -> Path:
    """The segmentation ensemble with the catalogue's FCN-ResNet50 stand-in (torchvision, random weights)."""
    from triton_vision_models import tensors as t
    from triton_vision_server import modelfiles

    repository = ensemble_repository(tmp_path_factory.mktemp("segmentation_fcn_repo"), t.SEGMENTATION)
    modelfiles.prepare(repository, modelfiles.CATALOGUE[t.SEGMENTER], stand_in=True)
    return repository


# -- detection ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def bright_box_detection_repository(tmp_path_factory) -> Path:
    """The detection ensemble with the known-answer stand-in (box = bright pixels' bounding box)."""
    import onnx

    from tests.detection_helpers import bright_box_detector
    from triton_vision_models import tensors as t
    from triton_vision_server import modelfiles

    repository = ensemble_repository(tmp_path_factory.mktemp("detection_bright_box_repo"), t.DETECTION)
    path = tmp_path_factory.mktemp("bright_box") / "bright_box.onnx"
    onnx.save(bright_box_detector(), str(path))
    modelfiles.prepare(repository, modelfiles.CATALOGUE[t.DETECTOR], from_path=path)
    return repository


@pytest.fixture(scope="session")
def mobilenet_detection_repository(tmp_path_factory) -> Path:
    """The detection ensemble with a seeded random MobileNetV3 Faster R-CNN (export extra needed)."""
    pytest.importorskip("torchvision")
    from tests.detection_helpers import lively_random_state_dict
    from triton_vision_models import tensors as t
    from triton_vision_server import modelfiles

    repository = ensemble_repository(tmp_path_factory.mktemp("detection_mobilenet_repo"), t.DETECTION)
    weights = lively_random_state_dict(tmp_path_factory.mktemp("mobilenet_weights") / "mobilenet_v3.pth")
    modelfiles.prepare(repository, modelfiles.CATALOGUE[t.DETECTOR_MOBILENET], from_path=weights)
    return repository


classification_server = serve_fixture("classification_repository")
segmentation_known_answer_server = serve_fixture("segmentation_known_answer_repository")
segmentation_fcn_server = serve_fixture("segmentation_fcn_repository")
bright_box_detection_server = serve_fixture("bright_box_detection_repository")
mobilenet_detection_server = serve_fixture("mobilenet_detection_repository")
