"""Model files: contract checks, renaming, pinned downloads and stand-ins (no network)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from triton_vision_models import tensors as t
from triton_vision_models.errors import ModelFileError
from triton_vision_server import modelfiles, standins

ENTRY = modelfiles.CATALOGUE[t.CLASSIFIER]


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


def test_import_renames_a_lone_input_and_output_to_the_contract(tmp_path):
    onnx.save(classifier("input", "output"), str(tmp_path / "src.onnx"))
    source = modelfiles.prepare(tmp_path / "repo", ENTRY, from_path=tmp_path / "src.onnx")
    served = tmp_path / "repo" / t.CLASSIFIER / "1" / "model.onnx"
    session = ort.InferenceSession(str(served))
    assert [i.name for i in session.get_inputs()] == [t.CLASSIFIER_INPUT]
    assert [o.name for o in session.get_outputs()] == [t.CLASSIFIER_OUTPUT]
    (logits,) = session.run(None, {t.CLASSIFIER_INPUT: np.ones((2, 3, 224, 224), np.float32)})
    np.testing.assert_allclose(logits, 3.0)
    assert source.kind == "local" and not source.is_stand_in
    assert modelfiles.read_source(tmp_path / "repo", t.CLASSIFIER) == source


def test_import_refuses_a_fixed_batch_dimension(tmp_path):
    onnx.save(classifier("data", "out", shape=(1, 3, 224, 224)), str(tmp_path / "src.onnx"))
    with pytest.raises(ModelFileError, match="dynamic batch dimension"):
        modelfiles.prepare(tmp_path / "repo", ENTRY, from_path=tmp_path / "src.onnx")


def test_import_refuses_the_wrong_input_size(tmp_path):
    onnx.save(classifier("data", "out", shape=("n", 3, 299, 299)), str(tmp_path / "src.onnx"))
    with pytest.raises(ModelFileError, match=r"\[batch, 3, 224, 224\]"):
        modelfiles.prepare(tmp_path / "repo", ENTRY, from_path=tmp_path / "src.onnx")


def test_download_checks_the_pinned_sha256(tmp_path):
    payload = tmp_path / "resnet.onnx"
    onnx.save(classifier(t.CLASSIFIER_INPUT, t.CLASSIFIER_OUTPUT), str(payload))
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    good = replace(ENTRY, downloads=(modelfiles.Download(payload.as_uri(), digest),))
    assert modelfiles.prepare(tmp_path / "repo", good).kind == "download"

    bad = replace(ENTRY, downloads=(modelfiles.Download(payload.as_uri(), "0" * 64),))
    with pytest.raises(ModelFileError, match="differs from the pinned"):
        modelfiles.download(bad, tmp_path / "repo2")


def test_prepare_falls_back_to_a_marked_stand_in_when_no_download_works(tmp_path):
    unreachable = replace(ENTRY, downloads=(modelfiles.Download((tmp_path / "absent.onnx").as_uri(), "0" * 64),))
    messages: list[str] = []
    source = modelfiles.prepare(tmp_path / "repo", unreachable, report=messages.append)
    assert source.is_stand_in
    assert "making a stand-in" in messages[0]
    served = tmp_path / "repo" / t.CLASSIFIER / "1" / "model.onnx"
    assert standins.is_stand_in(served)


def test_resnet18_stand_in_has_the_model_zoo_contract_and_a_dynamic_batch():
    session = ort.InferenceSession(ENTRY.build_stand_in().SerializeToString())
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == (t.CLASSIFIER_INPUT, t.CLASSIFIER_OUTPUT)
    assert inp.shape[1:] == [3, 224, 224] and isinstance(inp.shape[0], str)
    (logits,) = session.run(None, {inp.name: np.zeros((3, 3, 224, 224), np.float32)})
    assert logits.shape == (3, 1000) and logits.dtype == np.float32


def test_stand_ins_use_an_ir_version_older_onnx_runtime_builds_can_load():
    assert ENTRY.build_stand_in().ir_version <= standins.IR_VERSION == 8


def test_prepare_replaces_a_prepared_file_that_no_longer_fits_the_contract(tmp_path):
    old = tmp_path / "old.onnx"
    onnx.save(classifier("data", "logits"), str(old))
    modelfiles.prepare(tmp_path / "repo", ENTRY, from_path=old)  # renamed to the contract: fits
    outdated = replace(ENTRY, contract=modelfiles.Contract(inputs={"data": (3, 224, 224)}, outputs={"other": (1000,)}))
    messages: list[str] = []
    unreachable = replace(outdated, downloads=())
    source = modelfiles.prepare(tmp_path / "repo", unreachable, report=messages.append)
    assert "no longer fits the contract" in messages[0]
    assert source.is_stand_in
