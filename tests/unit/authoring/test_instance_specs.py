"""add-model for instance segmentation: the generated wiring, and specs that cannot describe their file
refused naming both sides."""

from __future__ import annotations

from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2

import triton_vision_contract as contract
from tests.support import format_models as fs
from tests.support.instance_models import yolo_seg_model
from triton_vision_authoring.add_model.add_model import generate
from triton_vision_authoring.add_model.ensemble_spec import SpecError, load_spec
from triton_vision_models import tensors as t
from triton_vision_models.repository import parse_config

LETTERBOX = {"resize": "letterbox", "size": [64, 64], "fill": 114}
LABELS = ("a", "b")


def case(tmp_path: Path, model, postprocess, *, task="instance-segmentation", preprocess=None) -> Path:
    return fs.write_case(tmp_path, "c", task, model, LABELS, preprocess or LETTERBOX, postprocess)


def refusal(spec_path: Path) -> str:
    with pytest.raises(SpecError) as refused:
        generate(load_spec(spec_path))
    return str(refused.value)


def files_of(spec_path: Path) -> dict[str, dict[str, str]]:
    return {m.name: m.files for m in generate(load_spec(spec_path)).models}


def test_yolo_seg_wires_predictions_and_prototypes_and_answers_an_instance_map(tmp_path):
    files = files_of(case(tmp_path, yolo_seg_model(), {"format": "yolo-seg", "iou_threshold": 0.5}))
    ensemble = parse_config(files["c"]["config.pbtxt"])
    assert [o.name for o in ensemble.output] == list(contract.TASK_OUTPUTS[t.INSTANCE_SEGMENTATION])
    instance_map = next(o for o in ensemble.output if o.name == t.INSTANCE_MAP)
    assert instance_map.data_type == model_config_pb2.TYPE_UINT16 and list(instance_map.dims) == [-1, -1]
    post = parse_config(files["c_postprocess"]["config.pbtxt"])
    assert [i.name for i in post.input] == [t.RAW_PREDICTIONS, t.RAW_PROTOTYPES, t.ORIGINAL_SIZE, t.RESIZED_SIZE]
    assert [list(i.dims) for i in post.input][:2] == [[8, 4], [2, 16, 16]]
    parameters = {key: value.string_value for key, value in post.parameters.items()}
    assert parameters["format"] == "yolo-seg" and parameters["default_iou_threshold"] == "0.5"
    assert "DetectionPostprocessor" in files["c_postprocess"]["1/model.py"]


def test_a_segment_model_given_the_detection_format_is_refused_naming_its_prototypes(tmp_path):
    message = refusal(case(tmp_path, yolo_seg_model(), {"format": "yolo"}, task="detection"))
    assert message == (
        "c.toml vs c.onnx: format 'yolo' reads output 'output0' [-1, 8, 4] as 4 box + 4 classes, the label file "
        "c.txt has 2 lines (label_offset 0); output 'output1' [-1, 2, 16, 16] looks like a segment model's mask "
        'prototypes: task = "instance-segmentation", format = "yolo-seg"'
    )


def test_yolo_seg_without_prototypes_is_refused(tmp_path):
    message = refusal(case(tmp_path, fs.yolo_detector(64, 64), {"format": "yolo-seg"}))
    assert message.startswith(
        "c.toml vs c.onnx: format 'yolo-seg' reads a 'prototypes' output ('output1'), which the file lacks "
        "(outputs: output0)"
    )


def test_yolo_seg_rows_against_the_labels_count_the_coefficients(tmp_path):
    model = yolo_seg_model(classes=3)
    message = refusal(case(tmp_path, model, {"format": "yolo-seg"}))
    assert message == (
        "c.toml vs c.onnx: format 'yolo-seg' reads output 'output0' [-1, 9, 4] as 4 box + 3 classes + 2 mask "
        "coefficients, the label file c.txt has 2 lines (label_offset 0)"
    )


def test_yolo_seg_needs_a_fixed_network_input(tmp_path):
    keep_aspect = {"resize": "keep-aspect", "min_size": 64, "max_size": 64}
    path = case(tmp_path, yolo_seg_model(), {"format": "yolo-seg"}, preprocess=keep_aspect)
    with pytest.raises(SpecError, match="format 'yolo-seg' gives mask prototypes over the whole network input"):
        load_spec(path)


def test_instance_formats_belong_to_their_task(tmp_path):
    with pytest.raises(SpecError, match=r"\[postprocess\] 'format' must be one of torchvision, tf-od, yolo"):
        load_spec(case(tmp_path, yolo_seg_model(), {"format": "yolo-seg"}, task="detection"))
