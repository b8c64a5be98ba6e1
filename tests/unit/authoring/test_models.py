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
    exported = model_files.CATALOGUE[t.TORCHVISION_DETECTOR]
    with pytest.raises(UsageError, match=r"not a model file \(a JPEG image\); model 'faster_rcnn_torchvision' takes"):
        model_files.prepare(tmp_path / "repo", exported, from_path=photo)
    with pytest.raises(UsageError, match=r"not an ONNX model \(a JPEG image; DecodeError\); model 'faster_rcnn' takes"):
        model_files.prepare(tmp_path / "repo", model_files.CATALOGUE[t.DETECTOR], from_path=photo)


def test_a_state_dict_given_for_the_zoo_detector_is_pointed_to_the_torchvision_entries(tmp_path):
    import zipfile

    from triton_vision_contract.errors import UsageError

    weights = tmp_path / "fasterrcnn.pth"
    with zipfile.ZipFile(weights, "w") as archive:  # what torch.save writes
        archive.writestr("archive/data.pkl", b"")
    with pytest.raises(UsageError) as refused:
        model_files.prepare(tmp_path / "repo", model_files.CATALOGUE[t.DETECTOR], from_path=weights)
    assert str(refused.value).endswith(
        "model 'faster_rcnn' takes an ONNX file; torchvision state dicts go to --model faster_rcnn_torchvision or "
        "faster_rcnn_mobilenet_v3 (their own ensemble)"
    )


@pytest.mark.parametrize("name", [t.TORCHVISION_DETECTOR, t.SEGMENTER])
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
    model_files.conform(model, entry, str(served), served=True)  # the signature, by name and shape
    assert served.stat().st_size < 1_000_000


def test_the_small_torchvision_detector_answers_one_whole_image_box_per_image():
    entry = model_files.CATALOGUE[t.TORCHVISION_DETECTOR]
    assert entry.small_stand_in is not None
    session = ort.InferenceSession(entry.small_stand_in().SerializeToString())
    images = np.random.default_rng(0).random((2, 3, 64, 80), dtype=np.float32)
    sizes = np.array([[64, 80], [40, 30]], np.int64)
    boxes, scores, labels, count = session.run(
        [t.TORCHVISION_BOXES, t.TORCHVISION_SCORES, t.TORCHVISION_LABELS, t.TORCHVISION_COUNT],
        {t.TORCHVISION_INPUT: images, t.TORCHVISION_IMAGE_SIZES: sizes},
    )
    np.testing.assert_array_equal(boxes, [[[0, 0, 80, 64]], [[0, 0, 30, 40]]])
    assert count.tolist() == [[1], [1]] and scores.shape == (2, 1) and ((0.5 < scores) & (scores < 1)).all()
    assert labels.dtype == np.int64 and ((1 <= labels) & (labels <= 90)).all()


def test_the_small_detector_answers_an_image_the_same_whatever_its_batch_mates():
    """The preprocessing zero-pads a batch to its largest image (bottom/right); the detector reads
    each image within its image_sizes only, as the exported Faster R-CNN does, so the padding (which
    the batch-mates decide) changes nothing."""
    entry = model_files.CATALOGUE[t.TORCHVISION_DETECTOR]  # the batched, keep-aspect torchvision signature
    assert entry.small_stand_in is not None
    session = ort.InferenceSession(entry.small_stand_in().SerializeToString())
    rng = np.random.default_rng(1)
    image = rng.normal(0.0, 1.0, (3, 40, 30)).astype(np.float32)

    def first_answer(*mates: np.ndarray) -> list[np.ndarray]:
        batch = [image, *mates]
        canvas = np.zeros((len(batch), 3, max(i.shape[1] for i in batch), max(i.shape[2] for i in batch)), np.float32)
        for row, pixels in zip(canvas, batch, strict=True):
            row[:, : pixels.shape[1], : pixels.shape[2]] = pixels
        sizes = np.array([i.shape[1:] for i in batch], np.int64)
        outputs = session.run(None, {t.TORCHVISION_INPUT: canvas, t.TORCHVISION_IMAGE_SIZES: sizes})
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
    entry = model_files.CATALOGUE[t.TORCHVISION_DETECTOR]
    with pytest.raises(ModelFileError, match=r"not fetched, a state dict: exporting it to ONNX needs torch"):
        model_files.download(entry, tmp_path / "repo")


# -- the model zoo's Faster R-CNN: a file without a batch dimension ---------------------------------------
DETECTOR = model_files.CATALOGUE[t.DETECTOR]
DETECTOR_OUTPUTS = [t.DETECTOR_BOXES, t.DETECTOR_LABELS, t.DETECTOR_SCORES]


def served_detector(repository) -> ort.InferenceSession:
    return ort.InferenceSession(str(repository / t.DETECTOR / "1" / "model.onnx"), providers=["CPUExecutionProvider"])


def test_offline_the_zoo_detector_is_a_small_marked_stand_in_of_its_signature_with_a_batch_of_one(tmp_path):
    """No torch, no network: the stand-in is a small graph of the zoo file's own contract, labelled as one,
    served (as the real file would be) with a batch dimension added."""
    unreachable = replace(DETECTOR, downloads=(model_files.Download((tmp_path / "absent").as_uri(), "0" * 64),))
    messages: list[str] = []
    source = model_files.prepare(tmp_path / "repo", unreachable, report=messages.append)
    assert source.is_stand_in and source.origin == model_files.DOWNLOAD_ONLY_ORIGIN
    assert model_files.describe(source).endswith(
        "a small graph with the same tensor signature, not the real architecture"
    )
    assert "making a stand-in instead" in messages[0]
    served = tmp_path / "repo" / t.DETECTOR / "1" / "model.onnx"
    assert standins.is_stand_in(served) and "NOT the real architecture" in onnx.load(str(served)).doc_string
    session = served_detector(tmp_path / "repo")
    (image,) = session.get_inputs()
    assert image.name == t.DETECTOR_INPUT and image.shape[1] == 3 and isinstance(image.shape[0], str)
    pixels = np.random.default_rng(0).normal(0, 40, (1, 3, 64, 96)).astype(np.float32)
    boxes, labels, scores = session.run(DETECTOR_OUTPUTS, {t.DETECTOR_INPUT: pixels})
    np.testing.assert_array_equal(boxes, [[[0, 0, 96, 64]]])  # the whole input
    assert labels.dtype == np.int64 and 1 <= labels[0, 0] <= 80 and 0.5 < scores[0, 0] < 1
    model_files.conform(onnx.load(str(served)), DETECTOR, str(served), served=True)  # fits as served


def unbatched_detector() -> onnx.ModelProto:
    """The zoo file's contract without its network: image [3, H, W] -> one box, label 3, score 0.9."""
    const = lambda name, value, dtype=np.float32: helper.make_tensor(  # noqa: E731
        name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), np.shape(value), np.ravel(value)
    )
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMax", [t.DETECTOR_INPUT], ["peak"], keepdims=0),
            helper.make_node("Mul", ["box", "peak"], [t.DETECTOR_BOXES]),
            helper.make_node("Identity", ["label"], [t.DETECTOR_LABELS]),
            helper.make_node("Identity", ["score"], [t.DETECTOR_SCORES]),
        ],
        "zoo_contract",
        [helper.make_tensor_value_info(t.DETECTOR_INPUT, TensorProto.FLOAT, [3, "height", "width"])],
        [
            helper.make_tensor_value_info(t.DETECTOR_BOXES, TensorProto.FLOAT, ["nbox", 4]),
            helper.make_tensor_value_info(t.DETECTOR_LABELS, TensorProto.INT64, ["nbox"]),
            helper.make_tensor_value_info(t.DETECTOR_SCORES, TensorProto.FLOAT, ["nbox"]),
        ],
        initializer=[const("box", [[1.0, 2.0, 3.0, 4.0]]), const("label", [3], np.int64), const("score", [0.9])],
    )
    # The zoo file is opset 12 (Squeeze/Unsqueeze take their axes as attributes there), IR version 7.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)], ir_version=7)


def test_a_pinned_download_without_a_batch_dimension_is_served_with_one_added(tmp_path):
    payload = tmp_path / "FasterRCNN-12.onnx"
    onnx.save(unbatched_detector(), str(payload))
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    pinned = replace(DETECTOR, downloads=(model_files.Download(payload.as_uri(), digest),))
    source = model_files.prepare(tmp_path / "repo", pinned)
    assert (source.kind, source.origin, source.arrived_sha256) == ("download", payload.as_uri(), digest)
    assert source.sha256 != digest  # the served file is the rewritten one, and says which file arrived
    boxes, labels, scores = served_detector(tmp_path / "repo").run(
        DETECTOR_OUTPUTS, {t.DETECTOR_INPUT: np.full((1, 3, 32, 64), 2.0, np.float32)}
    )
    assert boxes.tolist() == [[[2.0, 4.0, 6.0, 8.0]]] and labels.tolist() == [[3]] and scores.shape == (1, 1)
    again: list[str] = []
    assert model_files.prepare(tmp_path / "repo", pinned, report=again.append) == source and not again


def test_a_local_file_of_the_zoo_contract_is_imported_with_a_batch_dimension(tmp_path):
    path = tmp_path / "mine.onnx"
    onnx.save(unbatched_detector(), str(path))
    source = model_files.prepare(tmp_path / "repo", DETECTOR, from_path=path)
    assert source.kind == "local" and source.arrived_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    (image,) = served_detector(tmp_path / "repo").get_inputs()
    assert len(image.shape) == 4


def test_a_zoo_contract_file_with_other_tensors_is_refused_naming_the_signature(tmp_path):
    path = tmp_path / "other.onnx"
    model = unbatched_detector()
    model.graph.output[0].name = "boxes"
    model.graph.node[1].output[0] = "boxes"
    onnx.save(model, str(path))
    with pytest.raises(ModelFileError, match=r"outputs \['6381', '6383', 'boxes'\] do not match model 'faster_rcnn'"):
        model_files.prepare(tmp_path / "repo", DETECTOR, from_path=path)
