"""Integration tier: the real tritonserver, started once per repository per session."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ensemble_repository, torchvision_detection_repository
from triton_vision_serving.runtime import LocalTritonServer

SERVER_START_TIMEOUT_S = 240.0


@contextlib.contextmanager
def running_server(
    repository: Path, *, allow_model_control: bool = False, cache_size: int = 0, fuse: bool = True
) -> Iterator[LocalTritonServer]:
    """A LocalTritonServer on free loopback ports, ready, stopped afterwards (``allow_model_control``:
    clients may load and unload models, as with ``serve --allow-model-control``; ``cache_size``: bytes
    of response cache, as ``serve --cache-size``; ``fuse=False``: each ensemble's steps as separate
    models, as ``serve --separate-steps`` and the NGC container run them)."""
    from triton_vision_serving.server_config import ServerOptions

    options = ServerOptions.on_free_ports(
        repository, allow_model_control=allow_model_control, cache_size=cache_size, fuse=fuse
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
    from triton_vision_authoring import models as model_files
    from triton_vision_models import tensors as t

    repository = ensemble_repository(tmp_path_factory.mktemp("classification_repo"), t.CLASSIFICATION)
    model_files.prepare(repository, model_files.CATALOGUE[t.CLASSIFIER], stand_in=True)
    return repository


# -- segmentation -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def segmentation_known_answer_repository(tmp_path_factory) -> Path:
    """The segmentation ensemble with the colour-rule FCN (red -> person, green -> cat)."""
    import onnx

    from tests.support.segmentation import colour_rule_fcn
    from triton_vision_models import tensors as t

    repository = ensemble_repository(tmp_path_factory.mktemp("segmentation_colour_repo"), t.SEGMENTATION)
    onnx.save(colour_rule_fcn(), str(repository / t.SEGMENTER / "1" / "model.onnx"))
    return repository


@pytest.fixture(scope="session")
def segmentation_fcn_repository(tmp_path_factory) -> Path:
    """The segmentation ensemble with the catalogue's FCN-ResNet50 stand-in (torchvision, random weights)."""
    from triton_vision_authoring import models as model_files
    from triton_vision_models import tensors as t

    repository = ensemble_repository(tmp_path_factory.mktemp("segmentation_fcn_repo"), t.SEGMENTATION)
    model_files.prepare(repository, model_files.CATALOGUE[t.SEGMENTER], stand_in=True)
    return repository


# -- detection ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def bright_box_detection_repository(tmp_path_factory) -> Path:
    """The detection ensemble with the known-answer stand-in of the model zoo detector's contract (box = bright
    pixels' bounding box), imported as `models prepare --from` does (its batch dimension added)."""
    import onnx

    from tests.support.detection import bright_box_detector
    from triton_vision_authoring import models as model_files
    from triton_vision_models import tensors as t

    repository = ensemble_repository(tmp_path_factory.mktemp("detection_bright_box_repo"), t.DETECTION)
    path = tmp_path_factory.mktemp("bright_box") / "bright_box.onnx"
    onnx.save(bright_box_detector(), str(path))
    model_files.prepare(repository, model_files.CATALOGUE[t.DETECTOR], from_path=path)
    return repository


@pytest.fixture(scope="session")
def small_detection_repository(tmp_path_factory) -> Path:
    """The torchvision example's detection ensemble (batched, keep-aspect) with its small stand-in,
    served where torch is missing."""
    import onnx

    from triton_vision_authoring import models as model_files
    from triton_vision_models import tensors as t

    entry = model_files.CATALOGUE[t.TORCHVISION_DETECTOR]
    assert entry.small_stand_in is not None
    repository = torchvision_detection_repository(tmp_path_factory.mktemp("detection_small_repo"))
    path = tmp_path_factory.mktemp("small_detector") / "small_detector.onnx"
    onnx.save(entry.small_stand_in(), str(path))
    model_files.prepare(repository, entry, from_path=path)
    return repository


@pytest.fixture(scope="session")
def empty_detection_repository(tmp_path_factory) -> Path:
    """The detection ensemble with a detector of the built-in contract that finds nothing (zero rows)."""
    import onnx

    from tests.support.detection import empty_detector
    from triton_vision_authoring import models as model_files
    from triton_vision_models import tensors as t

    repository = ensemble_repository(tmp_path_factory.mktemp("detection_empty_repo"), t.DETECTION)
    path = tmp_path_factory.mktemp("empty") / "empty.onnx"
    onnx.save(empty_detector(), str(path))
    model_files.prepare(repository, model_files.CATALOGUE[t.DETECTOR], from_path=path)
    return repository


@pytest.fixture(scope="session")
def mobilenet_detection_repository(tmp_path_factory) -> Path:
    """The torchvision example's ensemble (examples/torchvision_detection) with a seeded random MobileNetV3
    Faster R-CNN (export extra needed)."""
    pytest.importorskip("torchvision")

    from tests.support.detection import lively_random_state_dict
    from triton_vision_authoring import models as model_files
    from triton_vision_models import tensors as t

    repository = torchvision_detection_repository(tmp_path_factory.mktemp("detection_mobilenet_repo"))
    weights = lively_random_state_dict(tmp_path_factory.mktemp("mobilenet_weights") / "mobilenet_v3.pth")
    model_files.prepare(repository, model_files.CATALOGUE[t.TORCHVISION_DETECTOR_MOBILENET], from_path=weights)
    return repository


# -- ensembles generated by add-model, one of each format ----------------------------------------
@pytest.fixture(scope="session")
def formats_repository(tmp_path_factory) -> Path:
    """A repository of add-model ensembles: the tiny models of every detection and segmentation format
    (tests/support/format_models.py) and, where ../shared has them, the 5-class MobileNetV2 ``pets`` and the
    TFLite MobileNet v1 ``mobilenet_v1``."""
    from tests.conftest import SHARED
    from tests.support import format_models as fs
    from triton_vision_authoring.add_model.add_model import add_model

    repository = tmp_path_factory.mktemp("formats_repo")
    specs = tmp_path_factory.mktemp("formats_specs")
    for name in fs.FORMAT_SPECS:
        add_model(fs.write_format_spec(specs, name), repository)
    if (SHARED / "models").is_dir():
        for path in (fs.write_pets_spec(specs, SHARED), fs.write_mobilenet_v1_spec(specs, SHARED)):
            add_model(path, repository)
    return repository


classification_server = serve_fixture("classification_repository")
segmentation_known_answer_server = serve_fixture("segmentation_known_answer_repository")
segmentation_fcn_server = serve_fixture("segmentation_fcn_repository")
bright_box_detection_server = serve_fixture("bright_box_detection_repository")
empty_detection_server = serve_fixture("empty_detection_repository")
mobilenet_detection_server = serve_fixture("mobilenet_detection_repository")
small_detection_server = serve_fixture("small_detection_repository")
formats_server = serve_fixture("formats_repository")
