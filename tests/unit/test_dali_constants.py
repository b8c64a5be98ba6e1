"""The self-contained dali.py files repeat the project's preprocessing facts: tie each copy to its source."""

from __future__ import annotations

import re
from types import ModuleType

import pytest

from tests.conftest import MODEL_REPOSITORY
from tests.modelconfigs import load_config
from triton_vision_models import tensors as t
from triton_vision_models.dali_runner import load_pipeline_module

PREPROCESSING = (t.CLASSIFICATION_PREPROCESS, t.DETECTION_PREPROCESS, t.SEGMENTATION_PREPROCESS)


def pipeline_module(model: str) -> ModuleType:
    return load_pipeline_module(MODEL_REPOSITORY / model / "1" / "dali.py", f"dali_constants_{model}")


@pytest.mark.parametrize("model", PREPROCESSING)
def test_normalisation_is_imagenet_mean_and_std_in_pixel_units(model):
    module = pipeline_module(model)
    assert module.MEAN == pytest.approx([m * 255 for m in t.IMAGENET_MEAN])
    assert module.STD == pytest.approx([s * 255 for s in t.IMAGENET_STD])


def test_classification_resize_and_crop_are_the_classifier_input_rule():
    module = pipeline_module(t.CLASSIFICATION_PREPROCESS)
    assert (module.RESIZE_SHORTER, module.CROP) == (t.CLASSIFIER_RESIZE_SHORTER, t.CLASSIFIER_INPUT_SIZE)
    assert list(load_config(MODEL_REPOSITORY / t.CLASSIFIER).input[0].dims) == [3, module.CROP, module.CROP]


def test_detection_resize_bounds_are_torchvisions():
    module = pipeline_module(t.DETECTION_PREPROCESS)
    assert (module.MIN_SIZE, module.MAX_SIZE) == (t.DETECTOR_MIN_SIZE, t.DETECTOR_MAX_SIZE)


def test_segmentation_canvas_is_the_working_resolution():
    assert pipeline_module(t.SEGMENTATION_PREPROCESS).CANVAS == t.SEGMENTATION_CANVAS


@pytest.mark.parametrize("model", PREPROCESSING)
def test_pipeline_batch_size_equals_the_configs_max_batch_size(model):
    source = (MODEL_REPOSITORY / model / "1" / "dali.py").read_text()
    (batch_size,) = re.findall(r"@pipeline_def\(batch_size=(\d+)", source)
    assert int(batch_size) == load_config(MODEL_REPOSITORY / model).max_batch_size
