"""What the demo says about its answers before giving them: model by model, real pretrained weights, an
imported file, or a stand-in with random weights (no server: the preparation is stubbed)."""

from __future__ import annotations

from tests.conftest import MODEL_REPOSITORY, copy_model_dirs
from triton_vision_authoring import models as model_files
from triton_vision_models import tensors as t
from triton_vision_models.provenance import ModelSource
from triton_vision_serving import demo

ZOO_DETECTOR = model_files.CATALOGUE[t.DETECTOR].downloads[0].url


def sources() -> dict[str, ModelSource]:
    return {
        t.CLASSIFIER: ModelSource("local", "/data/mobilenetv2.onnx", "ab" * 32),
        t.SEGMENTER: ModelSource("stand-in", model_files.SMALL_STAND_IN_ORIGIN, "cd" * 32),
        t.DETECTOR: ModelSource("download", ZOO_DETECTOR, "ef" * 32, "01" * 32),
    }


def test_each_model_is_said_to_be_real_imported_or_a_stand_in(tmp_path, monkeypatch):
    repository = copy_model_dirs(tmp_path / "repo", [p.name for p in MODEL_REPOSITORY.iterdir() if p.is_dir()])
    canned = sources()
    monkeypatch.setattr(model_files, "prepare", lambda repo, entry, **kwargs: canned[entry.name])
    prepared = demo.prepare_models(repository)
    assert prepared == canned  # only the built-in directories: no torchvision example here

    header, classifier, segmenter, detector = demo.which_answers_are_real(prepared)
    assert header == "which answers are real:"
    assert classifier == (
        "  resnet18 (classification): your file: as real as its weights (local from /data/mobilenetv2.onnx "
        "(sha256 abababababab...))"
    )
    assert segmenter == (
        "  fcn_resnet50 (segmentation): STAND-IN, random weights: meaningless answers (a small graph with the same "
        "tensor signature, not the real architecture); the real FCN-ResNet50 (ONNX model zoo fcn-resnet50-11, 21 "
        "Pascal VOC classes): with the network, `triton-vision models prepare --model fcn_resnet50 --force`"
    )
    assert detector == (
        "  faster_rcnn (detection): real: pretrained weights, Faster R-CNN R-50-FPN (ONNX model zoo FasterRCNN-12, "
        f"COCO box mAP 0.343, 80 classes) (download from {ZOO_DETECTOR} (sha256 010101010101...; served as a "
        "rewritten copy, sha256 efefefefefef...))"
    )
    assert demo.heading(t.DETECTION, prepared) == "detection (faster_rcnn: real: pretrained weights):"
    assert demo.heading(t.SEGMENTATION, prepared) == (
        "segmentation (fcn_resnet50: STAND-IN, random weights: meaningless answers):"
    )


def test_the_built_in_models_need_no_torch_to_be_real():
    """Every built-in ensemble's model is a pinned ONNX download: nothing to export, so `make demo` (which
    installs no torch) serves real weights wherever the network reaches the model zoo."""
    for model in demo.TASK_MODELS.values():
        entry = model_files.CATALOGUE[model]
        assert entry.convert is None and entry.downloads
        assert all(d.url.endswith(".onnx") and len(d.sha256) == 64 for d in entry.downloads)
