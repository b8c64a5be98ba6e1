"""OnnxRunner batches requests whose shapes agree and gives each its own rows back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from triton_vision_models.errors import ModelFileError
from triton_vision_models.onnx_runner import OnnxRunner
from triton_vision_models.spec import ModelSpec, RequestData, TensorSpec


def doubling_model(path: Path) -> None:
    """y = 2 * x, x of shape [N, -1]: lets the test see which rows went where."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "L"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "L"])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


def spec_in(folder: Path, *, max_batch_size: int = 8, output: str = "y") -> ModelSpec:
    return ModelSpec(
        name="double",
        repository_dir=folder,
        version_dir=folder / "1",
        max_batch_size=max_batch_size,
        inputs=(TensorSpec("x", np.dtype(np.float32), (-1,)),),
        outputs=(TensorSpec(output, np.dtype(np.float32), (-1,)),),
    )


@pytest.fixture
def runner(tmp_path) -> OnnxRunner:
    (tmp_path / "1").mkdir()
    doubling_model(tmp_path / "1" / "model.onnx")
    return OnnxRunner.from_spec(spec_in(tmp_path))


def test_requests_of_mixed_shapes_each_get_their_own_rows(runner):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(4, dtype=np.float32).reshape(1, 4) + 100
    c = np.arange(3, dtype=np.float32).reshape(1, 3) + 50
    out = runner([RequestData({"x": a}), RequestData({"x": b}), RequestData({"x": c})])
    np.testing.assert_array_equal(out[0]["y"], 2 * a)
    np.testing.assert_array_equal(out[1]["y"], 2 * b)
    np.testing.assert_array_equal(out[2]["y"], 2 * c)


def test_a_config_output_missing_from_the_onnx_file_is_named(tmp_path):
    (tmp_path / "1").mkdir()
    doubling_model(tmp_path / "1" / "model.onnx")
    with pytest.raises(ModelFileError, match="config output 'logits' is not an output of the ONNX file"):
        OnnxRunner.from_spec(spec_in(tmp_path, output="logits"))


def test_a_missing_model_file_says_how_to_make_it(tmp_path):
    with pytest.raises(ModelFileError, match="triton-vision models prepare"):
        OnnxRunner.from_spec(spec_in(tmp_path))


def test_arena_is_shrunk_only_after_batches_above_the_threshold(tmp_path):
    (tmp_path / "1").mkdir()
    doubling_model(tmp_path / "1" / "model.onnx")
    runner = OnnxRunner.from_spec(spec_in(tmp_path, max_batch_size=32))
    assert runner._run_options({"x": np.zeros((8, 3), np.float32)}) is None
    options = runner._run_options({"x": np.zeros((9, 3), np.float32)})
    assert options.get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"
    out = runner([RequestData({"x": np.ones((20, 3), np.float32)})])  # runs with the shrinking options
    np.testing.assert_array_equal(out[0]["y"], np.full((20, 3), 2.0, np.float32))
