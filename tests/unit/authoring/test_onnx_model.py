"""A model file against its spec (modelgen.onnx_model): every refusal names both sides, and the batching
decision (free, made free and batching, fixed 1, added) is what the graph allows, checked by running it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from tests.conftest import shared_path
from tests.support import format_models as fs
from triton_vision_authoring.add_model.add_model import generate
from triton_vision_authoring.add_model.ensemble_spec import SpecError, load_spec
from triton_vision_authoring.add_model.onnx_model import BATCH_ADDED, BATCH_FREE, BATCH_MADE_FREE, BATCH_ONE

STRETCH_32 = {"resize": "stretch", "size": [32, 32]}
ABC = ("a", "b", "c")


def case(tmp_path: Path, model, preprocess=None, postprocess=None, *, task="classification", labels=ABC, **top):
    return fs.write_case(tmp_path, "c", task, model, labels, preprocess or STRETCH_32, postprocess, **top)


def refusal(spec_path: Path) -> str:
    with pytest.raises(SpecError) as refused:
        generate(load_spec(spec_path))
    return str(refused.value)


# -- refusals: the spec and the file disagree -------------------------------------------------------------
def test_size_against_the_inputs_dimensions(tmp_path):
    path = case(tmp_path, fs.tiny_classifier(size=(32, 32)), {"resize": "stretch", "size": [48, 32]})
    assert (
        refusal(path)
        == "c.toml vs c.onnx: [preprocess] size = [48, 32] but input 'image' has shape [-1, 3, 32, 32] (height 32)"
    )
    path = case(tmp_path, fs.tiny_classifier(size=(32, 32)), {"resize": "stretch", "size": [32, 40]})
    assert (
        refusal(path)
        == "c.toml vs c.onnx: [preprocess] size = [32, 40] but input 'image' has shape [-1, 3, 32, 32] (width 32)"
    )


def test_an_nchw_spec_on_an_nhwc_file(tmp_path):
    path = case(tmp_path, fs.tiny_classifier(layout="NHWC"))
    assert refusal(path) == (
        "c.toml vs c.onnx: [preprocess] layout = \"NCHW\" puts the 3 colour channels on axis 1, but input 'image' "
        'has shape [-1, 32, 32, 3] (channels last: layout = "NHWC"?)'
    )


def test_an_nhwc_spec_on_an_nchw_file(tmp_path):
    path = case(tmp_path, fs.tiny_classifier(layout="NCHW"), {**STRETCH_32, "layout": "NHWC"})
    assert refusal(path) == (
        "c.toml vs c.onnx: [preprocess] layout = \"NHWC\" puts the 3 colour channels on axis 3, but input 'image' "
        'has shape [-1, 3, 32, 32] (channels first: layout = "NCHW"?)'
    )


def test_the_real_tflite_mobilenet_with_the_default_layout():
    """The shared MobileNet v1 is NHWC; a spec that forgets it is told so before anything runs."""
    model = shared_path("models/mobilenet_v1_0.25_224.onnx")
    labels = shared_path("labels/imagenet_1001_with_background.txt").read_text().splitlines()
    directory = Path(__import__("tempfile").mkdtemp())
    path = case(directory, model, {"resize": "stretch", "size": [224, 224]}, {"output": "probabilities"}, labels=labels)
    assert refusal(path) == (
        'c.toml vs mobilenet_v1_0.25_224.onnx: [preprocess] layout = "NCHW" puts the 3 colour channels on axis 1, '
        "but input 'input' has shape [1, 224, 224, 3] (channels last: layout = \"NHWC\"?)"
    )


@pytest.mark.parametrize(
    "dtype, spec_dtype, message",
    [
        (TensorProto.UINT8, "float32", "but input 'image' is UINT8 (dtype = \"uint8\"?)"),
        (TensorProto.FLOAT, "uint8", "but input 'image' is FP32 (dtype = \"float32\"?)"),
        (TensorProto.FLOAT16, "float32", "but input 'image' is FP16 (the preprocessing gives float32 or uint8)"),
    ],
)
def test_dtype_against_the_inputs_type(tmp_path, dtype, spec_dtype, message):
    path = case(tmp_path, fs.tiny_classifier(dtype=dtype), {**STRETCH_32, "dtype": spec_dtype})
    assert refusal(path) == f'c.toml vs c.onnx: [preprocess] dtype = "{spec_dtype}" ' + message


def test_class_count_against_the_label_lines(tmp_path):
    path = case(tmp_path, fs.tiny_classifier(classes=3), labels=("a", "b", "c", "d", ""))
    assert refusal(path) == "c.toml vs c.onnx: output 'scores' has 3 classes, the label file c.txt has 4 lines"


def test_top_k_above_the_classes(tmp_path):
    path = case(tmp_path, fs.tiny_classifier(), postprocess={"top_k": 4})
    assert refusal(path) == "c.toml vs c.onnx: [postprocess] top_k = 4 but the label file c.txt has 3 classes"


def test_yolo_rows_against_the_label_lines(tmp_path):
    path = case(
        tmp_path,
        fs.yolo_detector(64, 96),
        {"resize": "stretch", "size": [64, 96]},
        {"format": "yolo"},
        task="detection",
        labels=("red",),
    )
    assert refusal(path) == (
        "c.toml vs c.onnx: format 'yolo' reads output 'output0' [-1, 6, 5] as 4 box + 2 classes, the label file "
        "c.txt has 1 lines (label_offset 0)"
    )


def renamed_output(model: onnx.ModelProto, old: str, new: str) -> onnx.ModelProto:
    for node in model.graph.node:
        node.output[:] = [new if n == old else n for n in node.output]
    next(o for o in model.graph.output if o.name == old).name = new
    return model


TFOD_SPEC = {"resize": "stretch", "size": [48, 80], "layout": "NHWC", "dtype": "uint8"}


def test_a_missing_output_names_the_conventional_name_and_the_files_outputs(tmp_path):
    model = renamed_output(fs.tfod_detector(48, 80), "detection_boxes", "boxes_out")
    path = case(tmp_path, model, TFOD_SPEC, {"format": "tf-od"}, task="detection")
    assert refusal(path) == (
        "c.toml vs c.onnx: format 'tf-od' reads a 'boxes' output ('detection_boxes'), which the file lacks "
        "(outputs: boxes_out, detection_scores, detection_classes, num_detections); "
        'name it: [postprocess.tensors] boxes = "..."'
    )
    path = case(tmp_path, model, TFOD_SPEC, {"format": "tf-od", "tensors": {"boxes": "boxes_out"}}, task="detection")
    assert generate(load_spec(path)).signature.roles["boxes"] == "boxes_out"


def test_postprocess_tensors_naming_an_output_the_file_lacks(tmp_path):
    spec = {"format": "yolo", "tensors": {"predictions": "output1"}}
    path = case(
        tmp_path,
        fs.yolo_detector(64, 96),
        {"resize": "stretch", "size": [64, 96]},
        spec,
        task="detection",
        labels=("r", "b"),
    )
    assert refusal(path) == (
        "c.toml vs c.onnx: [postprocess.tensors] predictions = 'output1' is not an output of the file "
        "(outputs: output0)"
    )


def test_a_fixed_batch_above_one(tmp_path):
    path = case(tmp_path, fs.tiny_classifier(batch=4))
    assert refusal(path) == (
        "c.toml vs c.onnx: input 'image' has a fixed batch of 4; export it with a free batch dimension or a batch of 1"
    )


def test_a_file_that_is_not_onnx(tmp_path):
    path = case(tmp_path, shared_path("images/kitten.jpg").read_bytes())
    assert (
        refusal(path)
        == f"{tmp_path / 'c.onnx'}: not an ONNX model file (starts with ff d8 ff e0 00 10 4a 46; DecodeError)"
    )


def test_missing_model_and_label_files(tmp_path):
    path = case(tmp_path, tmp_path / "absent.onnx")
    assert refusal(path) == f"{tmp_path / 'absent.onnx'}: no such model file"
    path = case(tmp_path, fs.tiny_classifier())
    (tmp_path / "c.txt").unlink()
    assert refusal(path) == f"{tmp_path / 'c.txt'}: no such label file"


def two_inputs() -> onnx.ModelProto:
    model = fs.tiny_classifier()
    extra = onnx.helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", 3, 32, 32])
    model.graph.input.append(extra)
    return model


def test_an_input_that_cannot_be_told_from_the_image(tmp_path):
    path = case(tmp_path, two_inputs())
    assert refusal(path) == (
        "c.toml vs c.onnx: cannot tell which input takes the image (inputs: image, mask); "
        'name it: [inputs] image = "..."'
    )
    path = case(tmp_path, two_inputs(), inputs={"image": "mask"})
    assert (
        refusal(path)
        == "c.toml vs c.onnx: input 'image' is neither the image nor image_sizes: the ensemble cannot feed it"
    )
    path = case(tmp_path, fs.tiny_classifier(), inputs={"image": "pixels"})
    assert refusal(path) == "c.toml vs c.onnx: [inputs] image = 'pixels' is not an input of the file (inputs: image)"


def test_keep_aspect_on_an_input_of_fixed_size(tmp_path):
    spec = {"resize": "keep-aspect", "min_size": 32, "max_size": 48}
    path = case(tmp_path, fs.yolo_detector(64, 96), spec, {"format": "yolo"}, task="detection", labels=("r", "b"))
    assert refusal(path) == (
        "c.toml vs c.onnx: [preprocess] resize 'keep-aspect' makes inputs of each image's own size, but input "
        "'images' has fixed height and width [-1, 3, 64, 96]"
    )


def test_a_segmenter_with_more_classes_than_a_uint8_mask_holds(tmp_path):
    labels = [f"class {i}" for i in range(256)]
    path = case(
        tmp_path,
        fs.classmap_segmenter(48, 64),
        {"resize": "stretch", "size": [48, 64]},
        {"format": "class-map"},
        task="segmentation",
        labels=labels,
    )
    assert refusal(path) == "c.toml vs c.onnx: 256 classes do not fit a UINT8 mask (at most 255; 255 marks void pixels)"


def test_an_output_without_the_batch_dimension(tmp_path):
    model = fs.tiny_classifier()
    model.graph.output[0].type.tensor_type.shape.dim[0].Clear()
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 7
    path = case(tmp_path, model)
    assert refusal(path) == (
        "c.toml vs c.onnx: output 'scores' has shape [7, 3], without the batch dimension that input 'image' has "
        "first ([-1, 3, 32, 32]); Triton batches every tensor"
    )


# -- batching ----------------------------------------------------------------------------------------
def run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, feed)


@pytest.mark.parametrize(
    "model, batching, max_batch",
    [
        (fs.tiny_classifier(), BATCH_FREE, 32),
        (fs.tiny_classifier(batch=1), BATCH_MADE_FREE, 32),
        (fs.tiny_classifier(batch=1, batch_one_only=True), BATCH_ONE, 1),
    ],
    ids=["free", "made-free", "fixed-one"],
)
def test_classifier_batching(tmp_path, model, batching, max_batch):
    generated = generate(load_spec(case(tmp_path, model)))
    assert (generated.signature.batching, generated.max_batch_size) == (batching, max_batch)
    served = generated.onnx_model
    assert served is not None and served.graph.input[0].type.tensor_type.shape.dim[0].dim_param != ""
    images = np.random.default_rng(0).uniform(size=(max(2, max_batch) if batching != BATCH_ONE else 1, 3, 32, 32))
    (scores,) = run(served, {"image": images.astype(np.float32)})
    (alone,) = run(served, {"image": images[:1].astype(np.float32)})
    np.testing.assert_allclose(scores[:1], alone, rtol=1e-5)


def test_the_spec_max_batch_size_is_kept_where_the_model_batches_and_cut_to_one_where_not(tmp_path):
    path = case(tmp_path / "a", fs.tiny_classifier(), max_batch_size=8)
    assert generate(load_spec(path)).max_batch_size == 8
    path = case(tmp_path / "b", fs.tiny_classifier(batch=1, batch_one_only=True), max_batch_size=8)
    assert generate(load_spec(path)).max_batch_size == 1


def test_the_real_tflite_mobilenet_is_served_one_image_per_request(tmp_path):
    model = shared_path("models/mobilenet_v1_0.25_224.onnx")
    labels = shared_path("labels/imagenet_1001_with_background.txt").read_text().splitlines()
    spec = case(tmp_path, model, fs.MOBILENET_V1_PREPROCESS, {"output": "probabilities"}, labels=labels)
    generated = generate(load_spec(spec))
    assert (generated.signature.batching, generated.max_batch_size) == (BATCH_ONE, 1)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.Fail, match="cannot be reshaped"):  # to a batch of 1
        run(generated.onnx_model, {"input": np.zeros((2, 224, 224, 3), np.float32)})


def test_the_tfod_detector_with_a_fixed_batch_of_one_batches_once_made_free(tmp_path):
    path = case(
        tmp_path,
        fs.tfod_detector(48, 80),
        TFOD_SPEC,
        {"format": "tf-od", "label_offset": 1},
        task="detection",
        labels=fs.DET_LABELS,
    )
    generated = generate(load_spec(path))
    assert (generated.signature.batching, generated.max_batch_size) == (BATCH_MADE_FREE, 4)
    images = np.random.default_rng(0).integers(0, 255, size=(3, 48, 80, 3)).astype(np.uint8)
    outputs = run(generated.onnx_model, {"input_tensor": images})
    assert [o.shape for o in outputs] == [(3, 3, 4), (3, 3), (3, 3), (3,)]


@pytest.mark.parametrize("opset11", [False, True], ids=["opset17", "opset11"])
def test_a_detector_without_a_batch_dimension_gets_one(tmp_path, opset11):
    model = fs.opset11_unbatched_detector() if opset11 else fs.torchvision_unbatched_detector()
    preprocess = {"resize": "keep-aspect", "min_size": 40, "max_size": 60}
    path = case(tmp_path, model, preprocess, {"format": "torchvision"}, task="detection", labels=fs.DET_LABELS)
    generated = generate(load_spec(path))
    assert (generated.signature.batching, generated.max_batch_size) == (BATCH_ADDED, 1)
    served = generated.onnx_model
    assert served is not None
    assert [len(t.shape) for t in generated.signature.outputs] == [3, 2, 2]  # boxes [1, K, 4], labels, scores
    image = np.random.default_rng(0).uniform(size=(3, 40, 52)).astype(np.float32)
    batched = run(served, {"image": image[None]})
    alone = run(model, {"image": image})
    for got, want in zip(batched, alone, strict=True):
        np.testing.assert_array_equal(got, want[None])
