"""The built-in ensembles are generated from their specs: one mechanism, three instances.

Every committed file of the three ensembles' models (and of the shared image_guard and model_info)
must be what `triton-vision add-model model_repository/<ensemble>/spec.toml` writes; the specs'
facts must be the ones the rest of the project uses (tensors.py, the model catalogue).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import MODEL_REPOSITORY
from tests.support.modelconfigs import load_config
from triton_vision_authoring.add_model.add_model import expected_files
from triton_vision_authoring.add_model.ensemble_spec import load_spec
from triton_vision_models import tensors as t

ENSEMBLES = (t.CLASSIFICATION, t.DETECTION, t.SEGMENTATION)
GENERATE = "triton-vision add-model model_repository/{}/spec.toml"


def spec_path(ensemble: str) -> Path:
    return MODEL_REPOSITORY / ensemble / "spec.toml"


@pytest.mark.parametrize("ensemble", ENSEMBLES)
def test_committed_files_are_what_the_generator_writes_from_the_spec(ensemble):
    for model, files in expected_files(spec_path(ensemble)).items():
        for relative, text in files.items():
            path = MODEL_REPOSITORY / model / relative
            assert path.is_file(), f"{path} is missing: run {GENERATE.format(ensemble)}"
            assert path.read_text() == text, f"{path} differs from its spec: run {GENERATE.format(ensemble)}"


@pytest.mark.parametrize("ensemble", ENSEMBLES)
def test_each_generated_pipeline_batch_size_equals_its_config(ensemble):
    model = f"{ensemble}_preprocess"
    source = (MODEL_REPOSITORY / model / "1" / "dali.py").read_text()
    (batch_size,) = re.findall(r"@pipeline_def\(batch_size=(\d+)", source)
    assert int(batch_size) == load_config(MODEL_REPOSITORY / model).max_batch_size


@pytest.mark.parametrize("ensemble", [t.CLASSIFICATION, t.SEGMENTATION])
def test_normalisation_is_imagenet_mean_and_std(ensemble):
    pre = load_spec(spec_path(ensemble)).preprocess
    assert pre.mean == pytest.approx(t.IMAGENET_MEAN) and pre.std == pytest.approx(t.IMAGENET_STD)
    assert (pre.channels, pre.layout, pre.dtype) == ("RGB", "NCHW", "float32")


def test_classification_is_torchvisions_resize_256_centre_crop_224():
    spec = load_spec(spec_path(t.CLASSIFICATION))
    rule = spec.preprocess.rule
    assert (rule.mode, rule.shorter, rule.size) == (
        "shorter-crop",
        t.CLASSIFIER_RESIZE_SHORTER,
        (t.CLASSIFIER_INPUT_SIZE, t.CLASSIFIER_INPUT_SIZE),
    )
    assert (spec.model_name, spec.postprocess.output) == (t.CLASSIFIER, "logits")
    assert list(load_config(MODEL_REPOSITORY / t.CLASSIFIER).input[0].dims) == [3, *rule.size]


def test_detection_is_the_model_zoo_faster_rcnns_own_preprocessing():
    """BGR, the zoo's means subtracted from 0..255 pixels (std 1), shorter side 800 (longer at most 1333),
    padded to multiples of 32; its outputs read by their own names; one image per request."""
    spec = load_spec(spec_path(t.DETECTION))
    pre, rule = spec.preprocess, spec.preprocess.rule
    assert (rule.mode, rule.min_size, rule.max_size, rule.size_divisible) == (
        "keep-aspect",
        t.DETECTOR_MIN_SIZE,
        t.DETECTOR_MAX_SIZE,
        t.DETECTOR_SIZE_DIVISIBLE,
    )
    assert (pre.channels, pre.layout, pre.dtype, pre.pixel_units) == ("BGR", "NCHW", "float32", True)
    assert [m * 255 for m in pre.mean] == pytest.approx(t.DETECTOR_PIXEL_MEAN)
    assert [s * 255 for s in pre.std] == pytest.approx((1.0, 1.0, 1.0))
    assert (spec.model_name, spec.postprocess.format, spec.labels.name) == (
        t.DETECTOR,
        "torchvision",
        t.DETECTOR_LABEL_FILE,
    )
    assert dict(spec.postprocess.tensors) == {
        "boxes": t.DETECTOR_BOXES,
        "labels": t.DETECTOR_LABELS,
        "scores": t.DETECTOR_SCORES,
    }
    assert spec.declared is not None and spec.declared.batch_added
    assert load_config(MODEL_REPOSITORY / t.DETECTION).max_batch_size == t.DETECTION_MAX_BATCH == 1


def test_segmentation_is_a_top_left_letterbox_into_the_working_canvas():
    spec = load_spec(spec_path(t.SEGMENTATION))
    rule = spec.preprocess.rule
    assert (rule.mode, rule.size, rule.pad) == ("letterbox", (t.SEGMENTATION_CANVAS,) * 2, "top-left")
    assert (spec.model_name, spec.postprocess.format) == (t.SEGMENTER, "logits-nchw")


@pytest.mark.parametrize("ensemble", ENSEMBLES)
def test_the_model_catalogue_prepares_files_with_the_specs_tensors(ensemble):
    """`models prepare` checks a file against the catalogue's tensor signature: the spec declares the same one."""
    from triton_vision_authoring.models import CATALOGUE

    spec = load_spec(spec_path(ensemble))
    declared = spec.declared
    assert declared is not None
    signature = CATALOGUE[spec.model_name].signature
    assert {i.name: i.dims for i in declared.inputs} == signature.inputs
    outputs = {o.name: o.dims for o in declared.outputs}
    assert {name: outputs[name] for name in signature.outputs} == signature.outputs
    assert declared.batch_added == CATALOGUE[spec.model_name].unbatched


def test_the_add_model_pages_spec_table_is_the_specs_own_reference():
    from triton_vision_authoring.add_model.keys import reference_table

    page = (MODEL_REPOSITORY.parent / "docs" / "add-model.md").read_text()
    table = page.split("<!-- spec-keys -->\n", 1)[1].split("\n<!-- /spec-keys -->", 1)[0]
    assert table == reference_table()
