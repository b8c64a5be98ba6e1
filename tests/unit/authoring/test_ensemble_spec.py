"""Ensemble spec parsing (add_model.ensemble_spec): what it reads, and every refusal with its exact message
(each names the file, the key, what it must be and what it is)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.support.format_models import toml_text
from triton_vision_authoring.add_model.ensemble_spec import SpecError, parse_spec
from triton_vision_authoring.add_model.keys import KEYS
from triton_vision_models import geometry

SPEC = Path("/specs/my.toml")
BASES: dict[str, dict[str, Any]] = {
    "classification": {
        "name": "pets",
        "task": "classification",
        "model": "pets.onnx",
        "labels": "pets.txt",
        "preprocess": {"resize": "shorter-crop", "size": [224, 224], "shorter": 256},
    },
    "detection": {
        "name": "yolo",
        "task": "detection",
        "model": "yolo.onnx",
        "labels": "coco80.txt",
        "preprocess": {"resize": "letterbox", "size": [640, 640], "fill": 114},
        "postprocess": {"format": "yolo"},
    },
    "segmentation": {
        "name": "seg",
        "task": "segmentation",
        "model": "seg.onnx",
        "labels": "voc.txt",
        "preprocess": {"resize": "stretch", "size": [512, 512]},
        "postprocess": {"format": "logits-nhwc"},
    },
}


def spec(task: str = "classification", drop: tuple[str, ...] = (), **tables):
    """A valid spec of ``task`` with ``tables`` merged in (key "" for top-level keys), ``drop``ped keys
    removed ("preprocess.size" style); parsed."""
    return parse_spec(spec_text(task, drop, **tables), SPEC)


def spec_text(task: str, drop: tuple[str, ...] = (), **tables) -> str:
    data = copy.deepcopy(BASES[task])
    for table, values in tables.items():
        if table == "top":
            data.update(values)
        else:
            data.setdefault(table, {}).update(values)
    for key in drop:
        table, _, name = key.rpartition(".")
        (data[table] if table else data).pop(name)
    return toml_text(data)


def refusal(task: str = "classification", drop: tuple[str, ...] = (), **tables) -> str:
    with pytest.raises(SpecError) as refused:
        spec(task, drop, **tables)
    return str(refused.value)


# -- what a spec says ------------------------------------------------------------------------------------
def test_a_minimal_spec_takes_the_documented_defaults():
    parsed = spec()
    pre, post = parsed.preprocess, parsed.postprocess
    assert (parsed.name, parsed.task, parsed.model_name) == ("pets", "classification", "pets_model")
    assert parsed.model == Path("/specs/pets.onnx") and parsed.labels == Path("/specs/pets.txt")
    assert (pre.channels, pre.layout, pre.dtype, pre.interpolation, pre.antialias) == (
        "RGB",
        "NCHW",
        "float32",
        "linear",
        True,
    )
    assert (pre.mean, pre.std, pre.fill) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "mean")
    assert (post.output, post.top_k) == ("logits", None)
    assert parsed.max_batch_size is None


def test_a_detection_spec_reads_every_postprocess_key():
    parsed = spec(
        "detection",
        postprocess={"score_threshold": 0.25, "max_detections": 30, "iou_threshold": 0.6, "label_offset": 1},
        preprocess={"pad": "top-left", "channels": "BGR"},
    )
    post, rule = parsed.postprocess, parsed.preprocess.rule
    assert (post.format, post.score_threshold, post.max_detections, post.iou_threshold, post.label_offset) == (
        "yolo",
        0.25,
        30,
        0.6,
        1,
    )
    assert (rule.mode, rule.size, rule.pad) == (geometry.LETTERBOX, (640, 640), geometry.TOP_LEFT)
    assert parsed.preprocess.fill == 114.0 and parsed.preprocess.channels == "BGR"


def test_pixel_mean_and_std_are_the_same_normalisation_on_0_to_255_pixels():
    parsed = spec(
        "detection",
        preprocess={"resize": "keep-aspect", "min_size": 800, "max_size": 1333, "size_divisible": 32},
        postprocess={"format": "torchvision"},
        drop=("preprocess.size", "preprocess.fill"),
    )
    assert parsed.preprocess.rule.size_divisible == 32 and not parsed.preprocess.pixel_units
    with pytest.raises(SpecError, match=r"\[preprocess\] 'size_divisible' must be a whole number >= 1, got 0$"):
        spec(
            "detection",
            preprocess={"resize": "keep-aspect", "min_size": 800, "max_size": 1333, "size_divisible": 0},
            postprocess={"format": "torchvision"},
            drop=("preprocess.size", "preprocess.fill"),
        )
    zoo = spec(preprocess={"channels": "BGR", "pixel_mean": [102.9801, 115.9465, 122.7717]})
    pre = zoo.preprocess
    assert pre.pixel_units and pre.std == pytest.approx((1 / 255,) * 3)
    assert pre.mean == pytest.approx((102.9801 / 255, 115.9465 / 255, 122.7717 / 255))
    scaled = spec(preprocess={"pixel_mean": [123.675, 116.28, 103.53], "pixel_std": [58.395, 57.12, 57.375]})
    assert scaled.preprocess.mean == pytest.approx((0.485, 0.456, 0.406))
    assert scaled.preprocess.std == pytest.approx((0.229, 0.224, 0.225))


def test_absolute_paths_stay_as_they_are():
    parsed = spec(top={"model": "/models/x.onnx", "labels": "../labels/x.txt"})
    assert parsed.model == Path("/models/x.onnx") and parsed.labels == Path("/specs/../labels/x.txt")


# -- refusals ------------------------------------------------------------------------------------------
def test_text_that_is_not_toml_is_refused():
    with pytest.raises(SpecError, match=r"^my.toml: not valid TOML: "):
        parse_spec("name = pets\n", SPEC)


def unknown(table: str, key: str, hint: str = "") -> str:
    """The refusal of unknown ``key`` in ``table`` ("": the top level), ``hint`` after its name."""
    known = ", ".join(KEYS[table]) + ("" if table else "; tables [preprocess], [postprocess], [inputs], [tensors]")
    return f"my.toml: unknown key {f'[{table}] ' if table else ''}'{key}'{hint} (known: {known})"


C, D = "classification", "detection"


@pytest.mark.parametrize(
    "task, drop, tables, message",
    [
        (C, ("name",), {"top": {"nmae": "pets"}}, unknown("", "nmae", "; did you mean 'name'?")),
        (C, ("labels",), {"top": {"label": "pets.txt"}}, unknown("", "label", "; did you mean 'labels'?")),
        (C, ("preprocess",), {"preprocesss": {}}, unknown("", "preprocesss", "; did you mean 'preprocess'?")),
        (C, (), {"top": {"max_queue": 8}}, unknown("", "max_queue", "; did you mean 'max_queue_size'?")),
        (C, (), {"top": {"queue_timeout": 8}}, unknown("", "queue_timeout", "; did you mean 'queue_timeout_ms'?")),
        (C, (), {"top": {"shorter": 256}}, unknown("", "shorter", "; it is a key of [preprocess]")),
        (
            C,
            ("preprocess.shorter",),
            {"preprocess": {"shorter_side": 256}},
            unknown("preprocess", "shorter_side", "; did you mean 'shorter'?"),
        ),
        (
            C,
            (),
            {"preprocess": {"max_batch_size": 8}},
            unknown(
                "preprocess",
                "max_batch_size",
                "; did you mean 'max_size'? 'max_batch_size' is a key of the top level or [tensors]",
            ),
        ),
        (
            D,
            ("postprocess.format",),
            {"postprocess": {"formats": "yolo"}},
            unknown("postprocess", "formats", "; did you mean 'format'?"),
        ),
        (C, (), {"postprocess": {"topk": 3}}, unknown("postprocess", "topk", "; did you mean 'top_k'?")),
        (C, (), {"inputs": {"imag": "x"}}, unknown("inputs", "imag", "; did you mean 'image'?")),
        (C, (), {"inputs": {"pixels": "x"}}, unknown("inputs", "pixels")),
        (
            C,
            ("model",),
            {"tensors": {"output": []}},
            unknown("tensors", "output", "; did you mean 'outputs'? 'output' is a key of [postprocess]"),
        ),
        (
            D,
            (),
            {"postprocess": {"format": "torchvision", "tensors": {"boxs": "b"}}},
            "my.toml: [postprocess.tensors] 'boxs' is not a role of format 'torchvision'; did you mean 'boxes'? "
            "(roles: boxes, scores, labels, count)",
        ),
    ],
)
def test_an_unknown_key_is_named_with_a_did_you_mean_before_any_missing_key(task, drop, tables, message):
    assert refusal(task, drop, **tables) == message


@pytest.mark.parametrize(
    "tables, message",
    [
        ({"top": {"name": 3}}, "my.toml: 'name' must be a model name, got 3"),
        (
            {"top": {"name": "-pets"}},
            "my.toml: 'name' must be letters, digits, '_', '.' and '-' (not starting with '.' or '-'), got '-pets'",
        ),
        ({"top": {"max_batch_size": True}}, "my.toml: 'max_batch_size' must be a whole number in 1..32, got True"),
        ({"top": {"max_batch_size": 33}}, "my.toml: 'max_batch_size' must be a whole number in 1..32, got 33"),
        ({"top": {"max_batch_size": 0}}, "my.toml: 'max_batch_size' must be a whole number in 1..32, got 0"),
        ({"top": {"labels": 5}}, "my.toml: 'labels' must be a path (relative to the spec file), got 5"),
        ({"top": {"preprocess": 3}}, "my.toml: 'preprocess' must be a table, got 3"),
        (
            {"preprocess": {"size": [224.0, 224]}},
            "my.toml: [preprocess] 'size' must be a list of 2 whole numbers, got [224.0, 224]",
        ),
        ({"preprocess": {"size": [224]}}, "my.toml: [preprocess] 'size' must be a list of 2 whole numbers, got [224]"),
        (
            {"preprocess": {"size": [0, 224]}},
            "my.toml: [preprocess] 'size' must be [height, width] of positive whole numbers, got [0, 224]",
        ),
        ({"preprocess": {"shorter": 256.5}}, "my.toml: [preprocess] 'shorter' must be a whole number, got 256.5"),
        ({"preprocess": {"antialias": "yes"}}, "my.toml: [preprocess] 'antialias' must be true or false, got 'yes'"),
        (
            {"preprocess": {"mean": [0.5, 0.5]}},
            "my.toml: [preprocess] 'mean' must be a list of 3 numbers, got [0.5, 0.5]",
        ),
        (
            {"preprocess": {"std": [1, True, 1]}},
            "my.toml: [preprocess] 'std' must be a list of 3 numbers, got [1, True, 1]",
        ),
        (
            {"preprocess": {"std": [1, 0, 1]}},
            "my.toml: [preprocess] 'std' must be a list of 3 positive numbers, got [1, 0, 1]",
        ),
        (
            {"preprocess": {"pixel_std": [1, -1, 1]}},
            "my.toml: [preprocess] 'pixel_std' must be a list of 3 positive numbers, got [1, -1, 1]",
        ),
        (
            {"preprocess": {"pixel_mean": [100, 110, 120], "mean": [0.5, 0.5, 0.5]}},
            "my.toml: [preprocess] 'mean' and 'pixel_mean' say the same in other units (0..1 and 0..255 pixels): "
            "write one pair",
        ),
        ({"postprocess": {"top_k": 0}}, "my.toml: [postprocess] 'top_k' must be a whole number >= 1, got 0"),
        ({"postprocess": {"output": 1}}, "my.toml: [postprocess] 'output' must be one of logits, probabilities, got 1"),
    ],
)
def test_wrong_types_and_ranges_are_refused(tables, message):
    assert refusal(**tables) == message


@pytest.mark.parametrize(
    "task, tables, message",
    [
        (
            "classification",
            {"top": {"task": "detect"}},
            "my.toml: 'task' must be one of classification, detection, segmentation, embedding, "
            "instance-segmentation, keypoints, got 'detect'",
        ),
        (
            "classification",
            {"preprocess": {"resize": "crop"}},
            "my.toml: [preprocess] 'resize' must be one of shorter-crop, stretch, letterbox, keep-aspect, got 'crop'",
        ),
        (
            "classification",
            {"preprocess": {"channels": "rgb"}},
            "my.toml: [preprocess] 'channels' must be one of RGB, BGR, got 'rgb'",
        ),
        (
            "classification",
            {"preprocess": {"layout": "CHW"}},
            "my.toml: [preprocess] 'layout' must be one of NCHW, NHWC, got 'CHW'",
        ),
        (
            "classification",
            {"preprocess": {"dtype": "float16"}},
            "my.toml: [preprocess] 'dtype' must be one of float32, uint8, got 'float16'",
        ),
        (
            "classification",
            {"preprocess": {"interpolation": "area"}},
            "my.toml: [preprocess] 'interpolation' must be one of linear, cubic, nearest, got 'area'",
        ),
        (
            "classification",
            {"postprocess": {"output": "softmax"}},
            "my.toml: [postprocess] 'output' must be one of logits, probabilities, got 'softmax'",
        ),
        (
            "detection",
            {"preprocess": {"pad": "middle"}},
            "my.toml: [preprocess] 'pad' must be one of top-left, center, got 'middle'",
        ),
        (
            "detection",
            {"postprocess": {"format": "ssd"}},
            "my.toml: [postprocess] 'format' must be one of torchvision, tf-od, yolo, yolov5, yolox, got 'ssd'",
        ),
        (
            "segmentation",
            {"postprocess": {"format": "yolo"}},
            "my.toml: [postprocess] 'format' must be one of logits-nchw, logits-nhwc, class-map, got 'yolo'",
        ),
        (
            "detection",
            {"preprocess": {"fill": 300}},
            "my.toml: [preprocess] 'fill' must be a pixel value 0..255 or \"mean\", got 300",
        ),
        (
            "detection",
            {"preprocess": {"fill": "grey"}},
            "my.toml: [preprocess] 'fill' must be a pixel value 0..255 or \"mean\", got 'grey'",
        ),
        (
            "detection",
            {"preprocess": {"fill": "mean", "dtype": "uint8"}},
            "my.toml: [preprocess] 'fill' must be a pixel value 0..255 (dtype uint8 has no mean), got 'mean'",
        ),
        (
            "detection",
            {"postprocess": {"score_threshold": 1.5}},
            "my.toml: [postprocess] 'score_threshold' must be a number in [0, 1], got 1.5",
        ),
        (
            "detection",
            {"postprocess": {"iou_threshold": -0.1}},
            "my.toml: [postprocess] 'iou_threshold' must be a number in [0, 1], got -0.1",
        ),
        (
            "detection",
            {"postprocess": {"max_detections": 0}},
            "my.toml: [postprocess] 'max_detections' must be a whole number >= 1, got 0",
        ),
        (
            "detection",
            {"postprocess": {"label_offset": 1.5}},
            "my.toml: [postprocess] 'label_offset' must be a whole number, got 1.5",
        ),
    ],
)
def test_values_outside_their_choices_are_refused(task, tables, message):
    assert refusal(task, **tables) == message


@pytest.mark.parametrize(
    "task, tables, message",
    [
        (
            "segmentation",
            {"preprocess": {"fill": 0}},
            "my.toml: [preprocess] 'fill' applies to resize 'letterbox', not 'stretch'",
        ),
        (
            "segmentation",
            {"preprocess": {"pad": "center"}},
            "my.toml: [preprocess] 'pad' applies to resize 'letterbox', not 'stretch'",
        ),
        (
            "detection",
            {"preprocess": {"shorter": 700}},
            "my.toml: [preprocess] 'shorter' applies to resize 'shorter-crop', not 'letterbox'",
        ),
        (
            "detection",
            {"preprocess": {"min_size": 600}},
            "my.toml: [preprocess] 'min_size' applies to resize 'keep-aspect', not 'letterbox'",
        ),
        (
            "detection",
            {"preprocess": {"size_divisible": 32}},
            "my.toml: [preprocess] 'size_divisible' applies to resize 'keep-aspect', not 'letterbox'",
        ),
        (
            "classification",
            {"preprocess": {"dtype": "uint8", "pixel_mean": [100, 110, 120]}},
            "my.toml: [preprocess] 'pixel_mean' applies to dtype float32, not uint8 (raw 0..255 pixels)",
        ),
        (
            "classification",
            {"preprocess": {"dtype": "uint8", "mean": [0.5, 0.5, 0.5]}},
            "my.toml: [preprocess] 'mean' applies to dtype float32, not uint8 (raw 0..255 pixels)",
        ),
        (
            "classification",
            {"preprocess": {"dtype": "uint8", "std": [0.5, 0.5, 0.5]}},
            "my.toml: [preprocess] 'std' applies to dtype float32, not uint8 (raw 0..255 pixels)",
        ),
        (
            "detection",
            {"postprocess": {"output": "logits"}},
            "my.toml: [postprocess] 'output' applies to task classification, not detection",
        ),
        (
            "detection",
            {"postprocess": {"top_k": 3}},
            "my.toml: [postprocess] 'top_k' applies to task classification, not detection",
        ),
        (
            "classification",
            {"postprocess": {"format": "yolo"}},
            "my.toml: [postprocess] 'format' applies to detection, segmentation, instance-segmentation, keypoints, not "
            "classification",
        ),
        (
            "segmentation",
            {"postprocess": {"label_offset": 1}},
            "my.toml: [postprocess] 'label_offset' applies to task detection, instance-segmentation and keypoints, "
            "not "
            "segmentation",
        ),
        (
            "segmentation",
            {"postprocess": {"score_threshold": 0.3}},
            "my.toml: [postprocess] 'score_threshold' applies to task detection, instance-segmentation and keypoints, "
            "not "
            "segmentation",
        ),
        (
            "classification",
            {"postprocess": {"max_detections": 3}},
            "my.toml: [postprocess] 'max_detections' applies to task detection, instance-segmentation and keypoints, "
            "not "
            "classification",
        ),
        (
            "detection",
            {"postprocess": {"format": "torchvision", "iou_threshold": 0.5}},
            "my.toml: [postprocess] 'iou_threshold' applies to format 'yolo', 'yolov5', 'yolox', 'yolo-seg', "
            "'yolo-pose' (their NMS), not 'torchvision'",
        ),
        (
            "segmentation",
            {"inputs": {"image_sizes": "sizes"}},
            "my.toml: [inputs] 'image_sizes' applies to task detection, instance-segmentation and keypoints, not "
            "segmentation",
        ),
        (
            "classification",
            {"postprocess": {"tensors": {"logits": "x"}}},
            "my.toml: [postprocess.tensors] 'logits' is not a role of format 'classification' (roles: scores)",
        ),
        (
            "detection",
            {"postprocess": {"tensors": {"boxes": "x"}}},
            "my.toml: [postprocess.tensors] 'boxes' is not a role of format 'yolo' (roles: predictions)",
        ),
        (
            "detection",
            {"postprocess": {"tensors": {"predictions": 3}}},
            "my.toml: [postprocess.tensors] 'predictions' must be a tensor name, got 3",
        ),
    ],
)
def test_keys_that_do_not_apply_to_the_task_format_or_rule_are_refused(task, tables, message):
    assert refusal(task, **tables) == message


@pytest.mark.parametrize(
    "task, drop, tables, message",
    [
        ("classification", ("name",), {}, "my.toml: 'name' is missing (the ensemble's name)"),
        (
            "classification",
            ("task",),
            {},
            "my.toml: 'task' is missing (one of classification, detection, segmentation, embedding, "
            "instance-segmentation, keypoints)",
        ),
        (
            "classification",
            ("labels",),
            {},
            "my.toml: 'labels' is missing (one class name per line; CLASS_IDS index its lines (0-based); "
            "not for embedding)",
        ),
        ("classification", ("model",), {}, "my.toml: 'model' is missing (the ONNX file, relative to the spec file)"),
        ("classification", ("preprocess",), {}, "my.toml: the [preprocess] table is missing (resize, size, ...)"),
        (
            "classification",
            ("preprocess.resize",),
            {},
            "my.toml: [preprocess] 'resize' is missing (one of shorter-crop, stretch, letterbox, keep-aspect)",
        ),
        (
            "detection",
            ("postprocess.format",),
            {},
            "my.toml: [postprocess] 'format' is missing (for detection: one of torchvision, tf-od, yolo, "
            "yolov5, yolox)",
        ),
        (
            "segmentation",
            ("postprocess",),
            {},
            "my.toml: [postprocess] 'format' is missing (for segmentation: one of logits-nchw, logits-nhwc, class-map)",
        ),
        (
            "segmentation",
            ("preprocess.size",),
            {},
            "my.toml: [preprocess] resize 'stretch' needs 'size' (size: the network input's [height, width])",
        ),
        (
            "classification",
            ("preprocess.shorter",),
            {},
            "my.toml: [preprocess] resize 'shorter-crop' needs 'shorter' (shorter: the shorter side before the centre "
            "crop, at least the crop's larger side)",
        ),
        (
            "detection",
            ("preprocess.size", "preprocess.fill"),
            {"preprocess": {"resize": "keep-aspect", "min_size": 800}},
            "my.toml: [preprocess] resize 'keep-aspect' needs 'max_size' (max_size: the cap of the longer side)",
        ),
    ],
)
def test_missing_keys_are_refused_saying_what_they_are(task, drop, tables, message):
    assert refusal(task, drop, **tables) == message


@pytest.mark.parametrize(
    "task, drop, tables, message",
    [
        (
            "classification",
            (),
            {"preprocess": {"shorter": 200}},
            "my.toml: [preprocess] 'shorter' = 200 is below the crop's larger side (size = [224, 224]): the centre "
            "crop would run past the resized image",
        ),
        (
            "detection",
            ("preprocess.fill",),
            {"preprocess": {"resize": "keep-aspect", "min_size": 800, "max_size": 1333}},
            "my.toml: [preprocess] 'size': resize 'keep-aspect' takes the image's own size (omit size)",
        ),
        (
            "classification",
            ("preprocess.size", "preprocess.shorter"),
            {"preprocess": {"resize": "keep-aspect", "min_size": 800, "max_size": 1333}},
            "my.toml: [preprocess] resize 'keep-aspect' gives images of different sizes; a classifier needs a fixed "
            "size (shorter-crop, stretch or letterbox)",
        ),
        (
            "detection",
            ("preprocess.size", "preprocess.fill"),
            {
                "preprocess": {"resize": "keep-aspect", "min_size": 800, "max_size": 1333},
                "postprocess": {"format": "tf-od"},
            },
            "my.toml: [postprocess] format 'tf-od' gives boxes normalised to the network input, whose size resize "
            "'keep-aspect' leaves to each batch (its largest image): use stretch or letterbox",
        ),
    ],
    ids=["shorter-below-crop", "keep-aspect-size", "keep-aspect-classifier", "keep-aspect-tf-od"],
)
def test_rules_that_cannot_work_are_refused(task, drop, tables, message):
    assert refusal(task, drop, **tables) == message


def test_a_spec_without_model_may_declare_its_tensors_instead():
    parsed = spec(
        drop=("model",),
        tensors={
            "max_batch_size": 8,
            "inputs": [{"name": "data", "dtype": "float32", "dims": [3, 224, 224]}],
            "outputs": [{"name": "scores", "dtype": "float32", "dims": [5]}],
        },
    )
    assert parsed.model is None and parsed.declared is not None and parsed.declared.max_batch_size == 8
    assert refusal(drop=("model",), tensors={"inputs": [{"name": "data"}]}) == (
        "my.toml: [tensors] 'inputs' must be a list of {name, dtype, dims} tables, got [{'name': 'data'}]"
    )
