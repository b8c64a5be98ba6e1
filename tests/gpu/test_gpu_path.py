"""The GPU path, on a machine with a CUDA device (skipped elsewhere).

The three DALI pipelines pick "mixed" (nvJPEG) decoding when their pipeline has a device: their
outputs must agree with the CPU decoding path (nvJPEG's and libjpeg-turbo's IDCTs differ by a
level here and there), and the served classification ensemble, with its DALI model on a GPU
instance, must answer like the in-process CPU reference.
"""

from __future__ import annotations

import re

import numpy as np
import onnxruntime as ort
import pytest

from tests.gpu.gpu_support import cuda_device_count, jpeg_photos, row, runner
from tests.support.reference import classification_input, softmax
from triton_vision_models import tensors as t
from triton_vision_models.model_config import RequestData

pytestmark = pytest.mark.skipif(cuda_device_count() == 0, reason="no CUDA device for DALI")

PREPROCESS = (t.CLASSIFICATION_PREPROCESS, t.DETECTION_PREPROCESS, t.SEGMENTATION_PREPROCESS)
STD_255 = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None] * 255.0
# Back to 0..255 pixel levels: the ImageNet std, except the detector's input (its mean subtracted, std 1).
PIXEL_SCALE = {t.DETECTION_PREPROCESS: 1.0}


@pytest.mark.parametrize("model", PREPROCESS)
def test_mixed_decoding_runs_on_the_gpu_and_matches_cpu_decoding(model):
    from nvidia.dali.tensors import TensorListGPU

    gpu, cpu = runner(model, gpu=True), runner(model, gpu=False)
    gpu.pipeline.feed_input(t.IMAGE, [row(jpeg_photos()["chelsea"])[0]])
    assert isinstance(gpu.pipeline.run()[0], TensorListGPU), "the pipeline did not run on the GPU"
    for name, data in jpeg_photos().items():
        (on_gpu,) = gpu([RequestData({t.IMAGE: row(data)})])
        (on_cpu,) = cpu([RequestData({t.IMAGE: row(data)})])
        assert on_gpu.keys() == on_cpu.keys()
        for output, value in on_cpu.items():
            assert on_gpu[output].shape == value.shape, (model, name, output)
            if value.dtype.kind in "iu":
                np.testing.assert_array_equal(on_gpu[output], value, err_msg=f"{model} {name} {output}")
                continue
            error = np.abs(on_gpu[output] - value)[0] * PIXEL_SCALE.get(model, STD_255)
            assert error.mean() < 1.0, (model, name, output, float(error.mean()))
            assert np.percentile(error, 99) < 8.0, (model, name, output, float(np.percentile(error, 99)))


def test_served_classification_with_gpu_decoding_answers_like_the_cpu_reference(tmp_path):
    from tests.conftest import ensemble_repository
    from tests.integration.conftest import running_server
    from triton_vision_authoring import models as model_files
    from triton_vision_client.client import VisionClient

    repository = ensemble_repository(tmp_path / "repo", t.CLASSIFICATION)
    model_files.prepare(repository, model_files.CATALOGUE[t.CLASSIFIER], stand_in=True)
    photos = jpeg_photos()
    with running_server(repository) as server:
        with VisionClient(server.options.grpc_url, "grpc") as client:
            results = client.classify(list(photos.values()), top_k=5)
        log = server.log_path.read_text(errors="replace")
    assert re.search(r"classification_preprocess_0(_0)? \(GPU device 0\)", log), "DALI model not on a GPU instance"
    session = ort.InferenceSession(str(repository / t.CLASSIFIER / "1" / "model.onnx"))
    (logits,) = session.run(None, {t.CLASSIFIER_INPUT: np.stack([classification_input(d) for d in photos.values()])})
    for result, probs in zip(results, softmax(logits.astype(np.float64)), strict=True):
        for class_id, score in zip(result.class_ids, result.scores, strict=True):
            assert score == pytest.approx(probs[class_id], abs=0.05)
