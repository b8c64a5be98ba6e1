"""add-model on a model file that describes itself (Ultralytics' metadata_props): the spec it writes, and
files it cannot read by themselves refused with what to do."""

from __future__ import annotations

import onnx
import pytest

from tests.conftest import shared_path
from tests.support.instance_models import yolo_seg_model
from triton_vision_authoring.add_model.described import (
    add_described_model,
    default_name,
    read_description,
    spec_text,
)
from triton_vision_authoring.add_model.ensemble_spec import SpecError, parse_spec


def described(model: onnx.ModelProto, **props: str) -> onnx.ModelProto:
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    return model


ULTRALYTICS = {"task": "segment", "imgsz": "[64, 64]", "names": "{0: 'red', 1: 'blue'}", "stride": "32"}


def test_the_real_segment_export_describes_itself():
    model = onnx.load(str(shared_path("models/yolov8n-seg_int8_320.onnx")), load_external_data=False)
    description = read_description(model, "seg.onnx")
    assert description is not None
    assert (description.task, description.size, len(description.names)) == ("segment", (320, 320), 80)
    assert description.names[:3] == ("person", "bicycle", "car") and description.names[-1] == "toothbrush"


def test_the_spec_is_ultralytics_predictor_as_a_spec(tmp_path):
    description = read_description(described(yolo_seg_model(), **ULTRALYTICS), "m.onnx")
    assert description is not None
    text = spec_text(description, "m", "m.onnx", "m.labels.txt")
    spec = parse_spec(text, tmp_path / "m.toml")
    assert (spec.task, spec.postprocess.format) == ("instance-segmentation", "yolo-seg")
    rule = spec.preprocess.rule
    assert (rule.mode, rule.size, rule.pad, spec.preprocess.fill, spec.preprocess.antialias) == (
        "letterbox",
        (64, 64),
        "center",
        114.0,
        False,
    )
    assert (spec.preprocess.mean, spec.preprocess.std, spec.preprocess.channels) == ((0.0,) * 3, (1.0,) * 3, "RGB")
    post = spec.postprocess
    assert (post.score_threshold, post.iou_threshold, post.max_detections) == (0.25, 0.7, 300)


def test_add_model_on_the_file_alone_keeps_the_spec_and_the_names(tmp_path):
    path = tmp_path / "tiny-seg.onnx"
    onnx.save(described(yolo_seg_model(), **ULTRALYTICS), str(path))
    repository = tmp_path / "repo"
    repository.mkdir()
    result, kept = add_described_model(path, repository)
    assert result.spec.name == "tiny-seg" and kept.spec_path == repository / "tiny-seg" / "spec.toml"
    assert (repository / "tiny-seg_model" / "tiny-seg.labels.txt").read_text() == "red\nblue\n"
    assert 'model = "../tiny-seg_model/1/model.onnx"' in kept.text


def test_a_file_without_the_metadata_is_refused_saying_to_write_a_spec(tmp_path):
    path = tmp_path / "plain.onnx"
    onnx.save(yolo_seg_model(), str(path))
    with pytest.raises(SpecError, match=r"plain.onnx: the file does not describe itself .*write a spec"):
        add_described_model(path, tmp_path)


def test_tasks_read_by_themselves_are_detect_segment_pose():
    model = described(yolo_seg_model(), **{**ULTRALYTICS, "task": "obb"})
    with pytest.raises(SpecError, match="an Ultralytics 'obb' model; add-model reads detect, segment, pose exports"):
        read_description(model, "m.onnx")


def test_a_pose_model_must_say_its_keypoints():
    model = described(yolo_seg_model(), **{**ULTRALYTICS, "task": "pose", "kpt_shape": "[17]"})
    with pytest.raises(SpecError, match=r"metadata 'kpt_shape' must be \[keypoints, 2 or 3\], got \[17\]"):
        read_description(model, "m.onnx")


def test_the_default_name_is_the_file_stem_as_a_model_name(tmp_path):
    assert default_name(tmp_path / "yolov8n-seg_int8_320.onnx") == "yolov8n-seg_int8_320"
    assert default_name(tmp_path / "my model (v2).onnx") == "my_model__v2_"


def test_a_pose_export_is_served_as_keypoints_from_its_metadata(tmp_path):
    from tests.support.instance_models import yolo_pose_model

    props = {**ULTRALYTICS, "task": "pose", "kpt_shape": "[3, 3]", "names": "{0: 'person', 1: 'robot'}"}
    path = tmp_path / "pose.onnx"
    onnx.save(described(yolo_pose_model(), **props), str(path))
    repository = tmp_path / "repo"
    repository.mkdir()
    result, kept = add_described_model(path, repository)
    assert (result.spec.task, result.spec.postprocess.format) == ("keypoints", "yolo-pose")
    assert "keypoint_shape = [3, 3]" in kept.text
    config = (repository / "pose_postprocess" / "config.pbtxt").read_text()
    assert 'key: "keypoint_shape" value: { string_value: "3,3" }' in config
