"""add-model for keypoints: the wiring, the names and skeleton (the spec's, else COCO's for 17), and specs that
cannot describe their file refused naming both sides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import triton_vision_contract as contract
from tests.support import format_models as fs
from tests.support.instance_models import keypointrcnn_model, yolo_pose_model
from triton_vision_authoring.add_model.add_model import generate
from triton_vision_authoring.add_model.ensemble_spec import SpecError, load_spec
from triton_vision_authoring.add_model.keypoint_keys import COCO_KEYPOINTS
from triton_vision_models.repository import parse_config

LETTERBOX = {"resize": "letterbox", "size": [64, 64], "fill": 114}


def case(tmp_path: Path, model, postprocess, *, labels=("person", "robot"), preprocess=None) -> Path:
    return fs.write_case(tmp_path, "c", "keypoints", model, labels, preprocess or LETTERBOX, postprocess)


def refusal(spec_path: Path) -> str:
    with pytest.raises(SpecError) as refused:
        generate(load_spec(spec_path))
    return str(refused.value)


def parameters_of(spec_path: Path) -> dict[str, str]:
    files = {m.name: m.files for m in generate(load_spec(spec_path)).models}
    post = parse_config(files["c_postprocess"]["config.pbtxt"])
    ensemble = parse_config(files["c"]["config.pbtxt"])
    assert [o.name for o in ensemble.output] == list(contract.TASK_OUTPUTS[contract.KEYPOINT_TASK])
    return {key: value.string_value for key, value in post.parameters.items()}


def test_yolo_pose_carries_the_names_skeleton_and_row_shape(tmp_path):
    spec = {"format": "yolo-pose", "keypoint_shape": [3, 3], "keypoint_names": ["a", "b", "c"], "skeleton": [[0, 2]]}
    parameters = parameters_of(case(tmp_path, yolo_pose_model(), spec))
    assert json.loads(parameters["keypoint_names"]) == ["a", "b", "c"]
    assert json.loads(parameters["skeleton"]) == [[0, 2]]
    assert parameters["keypoint_shape"] == "3,3" and parameters["format"] == "yolo-pose"


def test_the_shape_may_come_from_the_files_metadata(tmp_path):
    model = yolo_pose_model()
    model.metadata_props.add(key="kpt_shape", value="[3, 3]")
    parameters = parameters_of(case(tmp_path, model, {"format": "yolo-pose"}))
    assert json.loads(parameters["keypoint_names"]) == ["keypoint0", "keypoint1", "keypoint2"]
    assert json.loads(parameters["skeleton"]) == []


def test_a_spec_shape_the_files_metadata_contradicts_is_refused_naming_both(tmp_path):
    model = yolo_pose_model()
    model.metadata_props.add(key="kpt_shape", value="[3, 3]")
    message = refusal(case(tmp_path, model, {"format": "yolo-pose", "keypoint_shape": [4, 2]}))
    assert message == (
        "c.toml vs c.onnx: [postprocess] keypoint_shape = [4, 2] but the file's metadata says kpt_shape [3, 3]"
    )


def test_a_shape_that_does_not_fit_the_rows_is_refused_naming_both(tmp_path):
    model = yolo_pose_model()
    model.metadata_props.add(key="kpt_shape", value="[2, 3]")
    message = refusal(case(tmp_path, model, {"format": "yolo-pose"}))
    assert message == (
        "c.toml vs c.onnx: format 'yolo-pose' reads output 'output0' [-1, 15, 3] as 4 box + 5 classes + 2 x 3 "
        "keypoint values (kpt_shape [2, 3], the file's metadata), the label file c.txt has 2 lines (label_offset 0)"
    )


def test_yolo_pose_without_a_shape_is_refused_saying_which_key(tmp_path):
    message = refusal(case(tmp_path, yolo_pose_model(), {"format": "yolo-pose"}))
    assert message.endswith("[postprocess] keypoint_shape = [keypoints, 2 or 3]")


def test_names_of_another_count_and_a_skeleton_beyond_them_are_refused(tmp_path):
    spec = {"format": "torchvision-keypointrcnn", "keypoint_names": ["a", "b", "c"]}
    rcnn = {"resize": "stretch", "size": [48, 64]}
    assert refusal(case(tmp_path, keypointrcnn_model(), spec, preprocess=rcnn)) == (
        "c.toml vs c.onnx: [postprocess] keypoint_names lists 3 names, the model has 2 keypoints"
    )
    spec = {"format": "torchvision-keypointrcnn", "skeleton": [[0, 2]]}
    assert refusal(case(tmp_path, keypointrcnn_model(), spec, preprocess=rcnn)) == (
        "c.toml vs c.onnx: [postprocess] skeleton pair [0, 2] names a keypoint beyond the 2 keypoints"
    )


def test_seventeen_keypoints_are_cocos_by_default(tmp_path):
    import numpy as np

    from tests.support.instance_models import constant_outputs_model

    model = constant_outputs_model("pose17", (64, 64), {"output0": np.zeros((4 + 1 + 51, 5), np.float32)})
    parameters = parameters_of(case(tmp_path, model, {"format": "yolo-pose", "keypoint_shape": [17, 3]}, labels=("p",)))
    assert json.loads(parameters["keypoint_names"]) == list(COCO_KEYPOINTS)
    assert len(json.loads(parameters["skeleton"])) == 19


def test_keypoint_keys_belong_to_the_keypoints_task(tmp_path):
    path = fs.write_case(
        tmp_path, "c", "detection", yolo_pose_model(), ("a",), LETTERBOX, {"format": "yolo", "keypoint_shape": [3, 3]}
    )
    with pytest.raises(SpecError, match=r"'keypoint_shape' applies to task keypoints, not detection"):
        load_spec(path)


def test_check_sets_the_post_processing_up_from_its_config(tmp_path):
    from triton_vision_authoring.add_model.add_model import add_model
    from triton_vision_authoring.check import check_repository

    spec = {"format": "yolo-pose", "keypoint_shape": [3, 3], "skeleton": [[0, 1]]}
    repository = tmp_path / "repo"
    repository.mkdir()
    add_model(case(tmp_path, yolo_pose_model(), spec), repository)
    assert check_repository(repository).ok
    config = repository / "c_postprocess" / "config.pbtxt"
    config.write_text(config.read_text().replace("[[0,1]]", "[[0,7]]"))
    (problem,) = check_repository(repository).problems
    assert str(problem) == (
        "c_postprocess: its post-processing cannot start from its config: model 'c_postprocess': skeleton pair "
        "[0, 7] names a keypoint beyond the 3 keypoints"
    )
