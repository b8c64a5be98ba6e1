"""FCN model files: the stand-ins and the known-answer model honour the fcn-resnet50-11 tensor signature."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from tests.support.segmentation import colour_rule_fcn
from triton_vision_authoring import models as model_files
from triton_vision_authoring import segmentation_onnx, standins
from triton_vision_models import tensors as t


def run(model, pixels: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([t.SEGMENTER_OUTPUT, t.SEGMENTER_AUX], {t.SEGMENTER_INPUT: pixels})


def test_tiny_stand_in_keeps_batch_height_and_width_and_is_marked():
    model = segmentation_onnx.tiny_fcn()
    entry = model_files.CATALOGUE[t.SEGMENTER]
    model_files.conform(model, entry, "tiny_fcn")
    out, aux = run(model, np.zeros((2, 3, 37, 53), np.float32))
    assert out.shape == aux.shape == (2, 21, 37, 53)
    assert any(p.key == standins.STAND_IN_KEY and p.value == "true" for p in model.metadata_props)


def test_colour_rule_model_labels_red_person_green_cat_gray_background():
    rgb = np.array([[[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.5, 0.5, 0.5]]], np.float32)  # 1 x 3 pixels
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    pixels = ((rgb - mean) / std).astype(np.float32).transpose(2, 0, 1)[None]
    model_files.conform(colour_rule_fcn(), model_files.CATALOGUE[t.SEGMENTER], "colour rule")
    out, _ = run(colour_rule_fcn(), pixels)
    np.testing.assert_array_equal(out[0].argmax(axis=0), [[15, 8, 0]])
