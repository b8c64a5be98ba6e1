"""OnnxRunner batches requests whose shapes agree and gives each its own rows back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from triton_vision_models.errors import ModelFileError
from triton_vision_models.model_config import ModelConfig, RequestData, TensorConfig
from triton_vision_models.onnx_runner import OnnxRunner


def doubling_model(path: Path) -> None:
    """y = 2 * x, x of shape [N, -1]: lets the test see which rows went where."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "L"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "L"])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


def config_in(folder: Path, *, max_batch_size: int = 8, output: str = "y") -> ModelConfig:
    return ModelConfig(
        name="double",
        repository_dir=folder,
        version_dir=folder / "1",
        max_batch_size=max_batch_size,
        inputs=(TensorConfig("x", np.dtype(np.float32), (-1,)),),
        outputs=(TensorConfig(output, np.dtype(np.float32), (-1,)),),
    )


@pytest.fixture
def runner(tmp_path) -> OnnxRunner:
    (tmp_path / "1").mkdir()
    doubling_model(tmp_path / "1" / "model.onnx")
    return OnnxRunner.from_config(config_in(tmp_path))


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
        OnnxRunner.from_config(config_in(tmp_path, output="logits"))


def test_a_missing_model_file_says_how_to_make_it(tmp_path):
    with pytest.raises(ModelFileError, match="triton-vision models prepare"):
        OnnxRunner.from_config(config_in(tmp_path))


# -- session options: the native ONNX Runtime backend's names and meaning -------------------------
def config_with(folder: Path, parameters: dict[str, str], level: int | None = None) -> ModelConfig:
    import dataclasses

    return dataclasses.replace(config_in(folder), parameters=parameters, graph_optimization_level=level)


@pytest.fixture
def model_dir(tmp_path) -> Path:
    (tmp_path / "1").mkdir()
    doubling_model(tmp_path / "1" / "model.onnx")
    return tmp_path


def test_intra_op_thread_count_reaches_the_onnx_runtime_session(model_dir):
    runner = OnnxRunner.from_config(
        config_with(model_dir, {"intra_op_thread_count": "1", "inter_op_thread_count": "3"})
    )
    options = runner.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 3


def test_execution_mode_1_is_parallel_and_graph_level_follows_the_native_mapping(model_dir):
    import onnxruntime as ort

    runner = OnnxRunner.from_config(config_with(model_dir, {"execution_mode": "1"}, level=1))
    options = runner.session.get_session_options()
    assert options.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (None, "ORT_ENABLE_ALL"),
        (-1, "ORT_ENABLE_BASIC"),
        (1, "ORT_ENABLE_EXTENDED"),
        (2, "ORT_DISABLE_ALL"),
        (0, "ORT_ENABLE_ALL"),
    ],
)
def test_graph_levels_map_as_tritons_onnxruntime_backend_maps_them(model_dir, level, expected):
    from triton_vision_models.onnx_runner import session_settings

    assert session_settings(config_with(model_dir, {}, level=level))["graph_optimization_level"] == expected


def test_defaults_leave_thread_counts_to_onnx_runtime(model_dir):
    from triton_vision_models.onnx_runner import session_settings

    assert session_settings(config_with(model_dir, {})) == {
        "intra_op_num_threads": 0,
        "inter_op_num_threads": 0,
        "execution_mode": "ORT_SEQUENTIAL",
        "graph_optimization_level": "ORT_ENABLE_ALL",
    }


@pytest.mark.parametrize(
    ("parameters", "message"),
    [({"execution_mode": "2"}, "execution_mode' must be 0 or 1"), ({"intra_op_thread_count": "two"}, "integer")],
)
def test_bad_session_parameters_are_refused_naming_them(model_dir, parameters, message):
    from triton_vision_models.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        OnnxRunner.from_config(config_with(model_dir, parameters))


def test_spec_reads_the_graph_level_from_the_config_optimization_block(tmp_path):
    import json

    config = {"name": "m", "max_batch_size": 1, "optimization": {"graph": {"level": -1}}}
    args = {"model_config": json.dumps(config), "model_repository": str(tmp_path), "model_version": "1"}
    assert ModelConfig.from_triton_args(args).graph_optimization_level == -1
    config.pop("optimization")
    args["model_config"] = json.dumps(config)
    assert ModelConfig.from_triton_args(args).graph_optimization_level is None


def test_arena_is_shrunk_only_after_batches_above_the_threshold(tmp_path):
    (tmp_path / "1").mkdir()
    doubling_model(tmp_path / "1" / "model.onnx")
    runner = OnnxRunner.from_config(config_in(tmp_path, max_batch_size=32))
    assert runner._run_options({"x": np.zeros((8, 3), np.float32)}) is None
    options = runner._run_options({"x": np.zeros((9, 3), np.float32)})
    assert options.get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"
    out = runner([RequestData({"x": np.ones((20, 3), np.float32)})])  # runs with the shrinking options
    np.testing.assert_array_equal(out[0]["y"], np.full((20, 3), 2.0, np.float32))


def test_spinning_entries_reach_the_session_and_the_native_booleans_are_read_as_triton_reads_them(model_dir):
    parameters = {
        "session.intra_op.allow_spinning": "0",
        "session.inter_op.allow_spinning": "1",
        "enable_mem_arena": "OFF",  # Triton's ParseBoolValue: case-insensitive true/on/1, false/off/0
        "enable_mem_pattern": "False",
    }
    options = OnnxRunner.from_config(config_with(model_dir, parameters)).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "1"
    assert options.enable_cpu_mem_arena is False
    assert options.enable_mem_pattern is False
    on = {"enable_mem_arena": "on", "enable_mem_pattern": "1"}
    options = OnnxRunner.from_config(config_with(model_dir, on)).session.get_session_options()
    assert options.enable_cpu_mem_arena is True
    assert options.enable_mem_pattern is True


def test_without_the_parameters_onnx_runtime_keeps_its_defaults(model_dir):
    options = OnnxRunner.from_config(config_with(model_dir, {})).session.get_session_options()
    with pytest.raises(RuntimeError, match="does not have configuration"):  # unset: ORT's default, spinning
        options.get_session_config_entry("session.intra_op.allow_spinning")
    assert options.enable_cpu_mem_arena is True
    assert options.enable_mem_pattern is True


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        # ONNX Runtime reads any value but "1" as "0": "true" would silently mean no spinning.
        ({"session.intra_op.allow_spinning": "true"}, r"allow_spinning' must be \"0\" or \"1\", got 'true'"),
        ({"session.inter_op.allow_spinning": ""}, r"inter_op.allow_spinning' must be \"0\" or \"1\""),
        ({"enable_mem_arena": "yes"}, "enable_mem_arena' must be true or false"),
        ({"enable_mem_pattern": ""}, "enable_mem_pattern' must be true or false"),
    ],
)
def test_bad_memory_and_spinning_values_are_refused_naming_them(model_dir, parameters, message):
    from triton_vision_models.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        OnnxRunner.from_config(config_with(model_dir, parameters))


def test_one_request_runs_on_its_own_array_and_several_on_their_concatenation(runner, monkeypatch):
    seen = []
    run = runner.run_batch

    def spy(inputs):
        seen.append(inputs["x"])
        return run(inputs)

    monkeypatch.setattr(runner, "run_batch", spy)
    a = np.ones((2, 3), np.float32)
    b = np.zeros((1, 3), np.float32)
    runner([RequestData({"x": a})])
    assert seen[-1] is a
    out = runner([RequestData({"x": a}), RequestData({"x": b})])
    assert seen[-1].shape == (3, 3)
    np.testing.assert_array_equal(out[1]["y"], 2 * b)


def test_the_calm_cpu_session_has_its_own_threads_and_runs_only_while_the_cpus_are_calm(model_dir, tmp_path):
    from triton_vision_models.cpu_pressure import CpuPressure

    parameters = {"intra_op_thread_count": "1", "idle_intra_op_thread_count": "3"}
    runner = OnnxRunner.from_config(config_with(model_dir, parameters))
    assert runner.session.get_session_options().intra_op_num_threads == 1
    assert runner.idle_session.get_session_options().intra_op_num_threads == 3
    path, now = tmp_path / "pressure", [0.0]
    runner.contention = CpuPressure(path, calm_below=0.2, clock=lambda: now[0])
    x = {"x": np.ones((1, 2), np.float32)}
    for stalled_us, calm in [(0, True), (1_000, True), (9_000, False), (9_500, True)]:
        path.write_text(f"some avg10=0 avg60=0 avg300=0 total={stalled_us}\n")
        before = runner.idle_runs
        np.testing.assert_array_equal(runner.run_batch(x)["y"], 2 * x["x"])  # both sessions answer alike
        assert runner.idle_runs - before == int(calm)
        now[0] += 0.01  # the next call's window: 10 ms


def test_without_the_parameter_there_is_one_session(model_dir):
    assert OnnxRunner.from_config(config_with(model_dir, {})).idle_session is None


def test_a_negative_calm_cpu_thread_count_is_refused(model_dir):
    from triton_vision_models.errors import ConfigError

    with pytest.raises(ConfigError, match="idle_intra_op_thread_count' must be >= 0"):
        OnnxRunner.from_config(config_with(model_dir, {"idle_intra_op_thread_count": "-1"}))
