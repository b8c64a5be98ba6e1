"""Model files: tensor signature checks, renaming, pinned downloads and stand-ins (no network)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from triton_vision_authoring import models as model_files
from triton_vision_authoring import standins
from triton_vision_models import tensors as t
from triton_vision_models.errors import ModelFileError

ENTRY = model_files.CATALOGUE[t.CLASSIFIER]


def classifier(input_name: str, output_name: str, shape=("batch", 3, 224, 224)) -> onnx.ModelProto:
    """A tiny 'classifier': global average pool then a fixed 3->1000 projection."""
    weights = helper.make_tensor("w", TensorProto.FLOAT, [3, 1000], np.ones(3000, dtype=np.float32))
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", [input_name], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], [output_name]),
        ],
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [shape[0], 1000])],
        initializer=[weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_import_renames_a_lone_input_and_output_to_the_signature(tmp_path):
    onnx.save(classifier("input", "output"), str(tmp_path / "src.onnx"))
    source = model_files.prepare(tmp_path / "repo", ENTRY, from_path=tmp_path / "src.onnx")
    served = tmp_path / "repo" / t.CLASSIFIER / "1" / "model.onnx"
    session = ort.InferenceSession(str(served))
    assert [i.name for i in session.get_inputs()] == [t.CLASSIFIER_INPUT]
    assert [o.name for o in session.get_outputs()] == [t.CLASSIFIER_OUTPUT]
    (logits,) = session.run(None, {t.CLASSIFIER_INPUT: np.ones((2, 3, 224, 224), np.float32)})
    np.testing.assert_allclose(logits, 3.0)
    assert source.kind == "local" and not source.is_stand_in
    assert model_files.recorded_source(tmp_path / "repo", t.CLASSIFIER) == source


def test_import_refuses_a_fixed_batch_dimension(tmp_path):
    onnx.save(classifier("data", "out", shape=(1, 3, 224, 224)), str(tmp_path / "src.onnx"))
    with pytest.raises(ModelFileError, match="dynamic batch dimension"):
        model_files.prepare(tmp_path / "repo", ENTRY, from_path=tmp_path / "src.onnx")


def test_import_refuses_the_wrong_input_size(tmp_path):
    onnx.save(classifier("data", "out", shape=("n", 3, 299, 299)), str(tmp_path / "src.onnx"))
    with pytest.raises(ModelFileError, match=r"\[batch, 3, 224, 224\]"):
        model_files.prepare(tmp_path / "repo", ENTRY, from_path=tmp_path / "src.onnx")


def test_download_checks_the_pinned_sha256(tmp_path):
    payload = tmp_path / "resnet.onnx"
    onnx.save(classifier(t.CLASSIFIER_INPUT, t.CLASSIFIER_OUTPUT), str(payload))
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    good = replace(ENTRY, downloads=(model_files.Download(payload.as_uri(), digest),))
    assert model_files.prepare(tmp_path / "repo", good).kind == "download"

    bad = replace(ENTRY, downloads=(model_files.Download(payload.as_uri(), "0" * 64),))
    with pytest.raises(ModelFileError, match="differs from the pinned"):
        model_files.download(bad, tmp_path / "repo2")


def test_prepare_falls_back_to_a_marked_stand_in_when_no_download_works(tmp_path):
    unreachable = replace(ENTRY, downloads=(model_files.Download((tmp_path / "absent.onnx").as_uri(), "0" * 64),))
    messages: list[str] = []
    source = model_files.prepare(tmp_path / "repo", unreachable, report=messages.append)
    assert source.is_stand_in
    assert "making a stand-in" in messages[0]
    served = tmp_path / "repo" / t.CLASSIFIER / "1" / "model.onnx"
    assert standins.is_stand_in(served)


def test_resnet18_stand_in_has_the_model_zoo_signature_and_a_dynamic_batch():
    session = ort.InferenceSession(ENTRY.build_stand_in().SerializeToString())
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == (t.CLASSIFIER_INPUT, t.CLASSIFIER_OUTPUT)
    assert inp.shape[1:] == [3, 224, 224] and isinstance(inp.shape[0], str)
    (logits,) = session.run(None, {inp.name: np.zeros((3, 3, 224, 224), np.float32)})
    assert logits.shape == (3, 1000) and logits.dtype == np.float32


def test_stand_ins_use_an_ir_version_older_onnx_runtime_builds_can_load():
    assert ENTRY.build_stand_in().ir_version <= standins.IR_VERSION == 8


def test_prepare_replaces_a_prepared_file_that_no_longer_fits_the_signature(tmp_path):
    old = tmp_path / "old.onnx"
    onnx.save(classifier("data", "logits"), str(old))
    model_files.prepare(tmp_path / "repo", ENTRY, from_path=old)  # renamed to the signature: fits
    outdated = replace(
        ENTRY, signature=model_files.TensorSignature(inputs={"data": (3, 224, 224)}, outputs={"other": (1000,)})
    )
    messages: list[str] = []
    unreachable = replace(outdated, downloads=())
    source = model_files.prepare(tmp_path / "repo", unreachable, report=messages.append)
    assert "no longer fits its tensor signature" in messages[0]
    assert source.is_stand_in


def test_prepared_files_are_readable_by_others_as_the_umask_allows(tmp_path):
    import os
    import stat

    previous = os.umask(0o022)
    try:
        model_files.prepare(tmp_path / "repo", ENTRY, stand_in=True)
    finally:
        os.umask(previous)
    served = tmp_path / "repo" / t.CLASSIFIER / "1" / "model.onnx"
    assert stat.S_IMODE(served.stat().st_mode) == 0o644
    previous = os.umask(0o077)  # a user who wants nothing shared gets that
    try:
        model_files.prepare(tmp_path / "private", ENTRY, stand_in=True)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "private" / t.CLASSIFIER / "1" / "model.onnx").stat().st_mode) == 0o600


def test_an_image_given_as_the_model_file_is_one_line_naming_the_file_and_what_it_is(tmp_path, chelsea_rgb):
    import cv2

    from triton_vision_contract.errors import UsageError

    photo = tmp_path / "kitten.jpg"
    cv2.imwrite(str(photo), chelsea_rgb)
    with pytest.raises(UsageError) as refused:
        model_files.prepare(tmp_path / "repo", ENTRY, from_path=photo)
    assert str(refused.value) == (
        f"--from {photo}: not an ONNX model (a JPEG image; DecodeError); model 'resnet18' takes an ONNX file"
    )
    detector = model_files.CATALOGUE[t.DETECTOR]
    with pytest.raises(UsageError, match=r"not a model file \(a JPEG image\); model 'faster_rcnn' takes"):
        model_files.prepare(tmp_path / "repo", detector, from_path=photo)


@pytest.mark.parametrize("name", [t.DETECTOR, t.SEGMENTER])
def test_without_torch_a_small_marked_stand_in_with_the_signature_says_how_to_get_the_real_one(
    name, tmp_path, monkeypatch
):
    import builtins

    real_import = builtins.__import__

    def no_torch(module, *args, **kwargs):
        if module.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"No module named '{module}'")
        return real_import(module, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    monkeypatch.setattr(model_files.torch_tools, "available", lambda: False)
    entry = model_files.CATALOGUE[name]
    unreachable = replace(
        entry, downloads=tuple(replace(d, url=(tmp_path / "absent").as_uri()) for d in entry.downloads)
    )
    messages: list[str] = []
    source = model_files.prepare(tmp_path / "repo", unreachable, report=messages.append)
    served = tmp_path / "repo" / entry.name / "1" / "model.onnx"
    assert source.is_stand_in and standins.is_stand_in(served)
    assert source.origin == model_files.SMALL_STAND_IN_ORIGIN
    assert any(
        "needs torch and torchvision: pip install 'triton-vision[export]'" in m
        and f"models prepare --model {entry.name} --force` makes the real one" in m
        for m in messages
    ), messages
    model = onnx.load(str(served))
    model_files.conform(model, entry, str(served), rename=False)  # the signature, by name and shape
    assert served.stat().st_size < 1_000_000


def test_the_small_detector_answers_one_whole_image_box_per_image():
    entry = model_files.CATALOGUE[t.DETECTOR]
    assert entry.small_stand_in is not None
    session = ort.InferenceSession(entry.small_stand_in().SerializeToString())
    images = np.random.default_rng(0).random((2, 3, 64, 80), dtype=np.float32)
    sizes = np.array([[64, 80], [40, 30]], np.int64)
    boxes, scores, labels, count = session.run(
        [t.DETECTOR_BOXES, t.DETECTOR_SCORES, t.DETECTOR_LABELS, t.DETECTOR_COUNT],
        {t.DETECTOR_INPUT: images, t.DETECTOR_IMAGE_SIZES: sizes},
    )
    np.testing.assert_array_equal(boxes, [[[0, 0, 80, 64]], [[0, 0, 30, 40]]])
    assert count.tolist() == [[1], [1]] and scores.shape == (2, 1) and ((0.5 < scores) & (scores < 1)).all()
    assert labels.dtype == np.int64 and ((1 <= labels) & (labels <= 90)).all()


def test_the_small_detector_answers_an_image_the_same_whatever_its_batch_mates():
    """The preprocessing zero-pads a batch to its largest image (bottom/right); the detector reads
    each image within its image_sizes only, as the exported Faster R-CNN does, so the padding (which
    the batch-mates decide) changes nothing."""
    session = ort.InferenceSession(model_files.CATALOGUE[t.DETECTOR].small_stand_in().SerializeToString())
    rng = np.random.default_rng(1)
    image = rng.normal(0.0, 1.0, (3, 40, 30)).astype(np.float32)

    def first_answer(*mates: np.ndarray) -> list[np.ndarray]:
        batch = [image, *mates]
        canvas = np.zeros((len(batch), 3, max(i.shape[1] for i in batch), max(i.shape[2] for i in batch)), np.float32)
        for row, pixels in zip(canvas, batch, strict=True):
            row[:, : pixels.shape[1], : pixels.shape[2]] = pixels
        sizes = np.array([i.shape[1:] for i in batch], np.int64)
        outputs = session.run(None, {t.DETECTOR_INPUT: canvas, t.DETECTOR_IMAGE_SIZES: sizes})
        return [output[0] for output in outputs]

    alone = first_answer()
    for mates in [
        (rng.normal(0.0, 1.0, (3, 64, 80)),),  # padded along both axes
        (rng.normal(0.0, 1.0, (3, 20, 100)),),  # along the width only
        (rng.normal(0.0, 1.0, (3, 90, 10)), rng.normal(0.0, 1.0, (3, 40, 30))),  # the height only, three images
    ]:
        for got, want in zip(first_answer(*(m.astype(np.float32) for m in mates)), alone, strict=True):
            np.testing.assert_array_equal(got, want)


def test_a_download_that_needs_torch_is_not_fetched_without_it(tmp_path, monkeypatch):
    monkeypatch.setattr(model_files.torch_tools, "available", lambda: False)
    entry = model_files.CATALOGUE[t.DETECTOR]
    with pytest.raises(ModelFileError, match=r"not fetched, a state dict: exporting it to ONNX needs torch"):
        model_files.download(entry, tmp_path / "repo")
