"""``triton-vision check`` on deliberately broken repositories: one breakage each, its exact message.

Each fixture is a copy of the classification ensemble (configs, dali.py, model.py, labels; no
ONNX files) with one thing broken the way a hand edit or a rename would break it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import MODEL_REPOSITORY, ensemble_repository
from triton_vision_authoring.check import check_repository
from triton_vision_cli.main import main


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    return ensemble_repository(tmp_path / "repo", "classification")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


def classifier_onnx(
    path: Path,
    *,
    input_name: str = "data",
    output_name: str = "resnetv15_dense0_fwd",
    input_type: int = TensorProto.FLOAT,
    input_shape: tuple = ("N", 3, 224, 224),
    extra_input: str | None = None,
) -> None:
    """A tiny valid classifier graph: mean over H, W, then a 3x1000 MatMul."""
    nodes = [
        helper.make_node("Cast", [input_name], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["as_float"], ["pooled"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["pooled", "weights"], [output_name]),
    ]
    inputs = [helper.make_tensor_value_info(input_name, input_type, list(input_shape))]
    if extra_input is not None:
        inputs.append(helper.make_tensor_value_info(extra_input, TensorProto.FLOAT, ["N", 1]))
    graph = helper.make_graph(
        nodes,
        "classifier",
        inputs,
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 1000])],
        initializer=[numpy_helper.from_array(np.zeros((3, 1000), np.float32), "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def problems(repository: Path) -> list[str]:
    return [str(p) for p in check_repository(repository).problems]


# -- the unbroken copy ------------------------------------------------------------------------------
def test_the_classification_ensemble_copy_passes_with_a_note_for_the_unprepared_onnx_file(repository: Path):
    report = check_repository(repository)
    assert report.problems == []
    assert [str(n) for n in report.notes] == ["resnet18: 1/model.onnx is not prepared (its tensor checks are skipped)"]


def test_a_matching_onnx_file_passes(repository: Path):
    classifier_onnx(repository / "resnet18" / "1" / "model.onnx")
    report = check_repository(repository)
    assert report.problems == [] and report.notes == []


def test_gpu_configuration_is_accepted(repository: Path):
    """Instance groups on a GPU and ONNX Runtime's TensorRT/CUDA accelerators are configuration."""
    config = repository / "resnet18" / "config.pbtxt"
    config.write_text(
        config.read_text()
        + """
instance_group [ { kind: KIND_GPU count: 2 gpus: [ 0 ] } ]
optimization { execution_accelerators {
  gpu_execution_accelerator : [ {
    name : "tensorrt"
    parameters { key: "precision_mode" value: "FP16" }
    parameters { key: "max_workspace_size_bytes" value: "1073741824" }
  }, { name : "cuda" } ]
} }
"""
    )
    edit(
        repository / "classification_preprocess" / "config.pbtxt",
        "dynamic_batching",
        "instance_group [ { kind: KIND_GPU } ]\ndynamic_batching",
    )
    assert problems(repository) == []


# -- one breakage each --------------------------------------------------------------------------------
def _unparsable(repo: Path) -> None:
    edit(repo / "resnet18" / "config.pbtxt", "max_batch_size: 32", "max_batch_size: thirty-two")


def _renamed_directory(repo: Path) -> None:
    (repo / "resnet18").rename(repo / "resnet_18")


def _no_version_folder(repo: Path) -> None:
    (repo / "resnet18" / "1" / ".gitkeep").unlink()
    (repo / "resnet18" / "1").rmdir()


def _step_names_missing_model(repo: Path) -> None:
    edit(repo / "classification_infer" / "config.pbtxt", 'model_name: "resnet18"', 'model_name: "resnet19"')


def _input_map_key_unknown(repo: Path) -> None:
    edit(repo / "classification_infer" / "config.pbtxt", 'input_map { key: "data"', 'input_map { key: "input"')


def _input_reads_unknown_tensor(repo: Path) -> None:
    edit(repo / "classification_infer" / "config.pbtxt", 'key: "data" value: "pixels"', 'key: "data" value: "pixel"')


def _dtype_mismatch(repo: Path) -> None:
    edit(repo / "resnet18" / "config.pbtxt", 'name: "data" data_type: TYPE_FP32', 'name: "data" data_type: TYPE_FP16')


def _shape_mismatch(repo: Path) -> None:
    edit(repo / "resnet18" / "config.pbtxt", "dims: [ 3, 224, 224 ]", "dims: [ 3, 256, 256 ]")


def _output_map_key_unknown(repo: Path) -> None:
    edit(repo / "classification_infer" / "config.pbtxt", 'key: "resnetv15_dense0_fwd"', 'key: "logits"')


def _ensemble_output_not_produced(repo: Path) -> None:
    edit(repo / "classification" / "config.pbtxt", ',\n        { key: "LABELS" value: "LABELS" }', "")


def _step_batch_too_small(repo: Path) -> None:
    edit(repo / "resnet18" / "config.pbtxt", "max_batch_size: 32", "max_batch_size: 8")


def _missing_model_py(repo: Path) -> None:
    (repo / "classification_postprocess" / "1" / "model.py").unlink()


def _missing_label_filename(repo: Path) -> None:
    (repo / "resnet18" / "imagenet_labels.txt").rename(repo / "resnet18" / "labels.txt")


def _labels_parameter_names_missing_file(repo: Path) -> None:
    edit(repo / "classification_postprocess" / "config.pbtxt", "resnet18/imagenet_labels.txt", "resnet18/labels.txt")


def _unknown_accelerator(repo: Path) -> None:
    config = repo / "resnet18" / "config.pbtxt"
    config.write_text(
        config.read_text()
        + 'optimization { execution_accelerators { gpu_execution_accelerator: [ { name: "tensorrtx" } ] } }\n'
    )


def _ensemble_output_reshaped(repo: Path) -> None:
    edit(
        repo / "classification_infer" / "config.pbtxt",
        '{ name: "LOGITS" data_type: TYPE_FP32 dims: [ 1000 ] }',
        '{ name: "LOGITS" data_type: TYPE_FP32 dims: [ 1000 ] reshape: { shape: [ 10, 100 ] } }',
    )


def _dali_external_source_renamed(repo: Path) -> None:
    edit(repo / "classification_preprocess" / "1" / "dali.py", 'name="IMAGE"', 'name="IMAGES"')


def _dali_does_not_import(repo: Path) -> None:
    edit(repo / "classification_preprocess" / "1" / "dali.py", "from nvidia.dali import", "from nvidia.dalí import")


def _dali_without_autoserialize(repo: Path) -> None:
    edit(repo / "classification_preprocess" / "1" / "dali.py", "@autoserialize\n", "")


def _dali_output_count(repo: Path) -> None:
    edit(
        repo / "classification_preprocess" / "config.pbtxt",
        '{ name: "PIXELS" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] }',
        '{ name: "PIXELS" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] },\n'
        '  { name: "SIZE" data_type: TYPE_INT64 dims: [ 2 ] }',
    )


def _onnx_input_named_otherwise(repo: Path) -> None:
    classifier_onnx(repo / "resnet18" / "1" / "model.onnx", input_name="input")


def _onnx_dtype(repo: Path) -> None:
    classifier_onnx(repo / "resnet18" / "1" / "model.onnx", input_type=TensorProto.UINT8)


def _onnx_rank(repo: Path) -> None:
    classifier_onnx(repo / "resnet18" / "1" / "model.onnx", input_shape=("N", 3, 224))


def _onnx_fixed_dimension(repo: Path) -> None:
    classifier_onnx(repo / "resnet18" / "1" / "model.onnx", input_shape=("N", 3, 256, 256))


def _onnx_extra_input(repo: Path) -> None:
    classifier_onnx(repo / "resnet18" / "1" / "model.onnx", extra_input="scale")


BREAKAGES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "directory renamed": (
        _renamed_directory,
        [
            "classification_infer: step 3 names model 'resnet18', which is not in the repository",
            "classification_postprocess: parameter 'labels' names 'resnet18/imagenet_labels.txt', "
            "which is not a file of the repository",
            "resnet_18: config name 'resnet18' differs from its directory name 'resnet_18'",
        ],
    ),
    "no version folder": (
        _no_version_folder,
        ["resnet18: no version folder (e.g. 1/; Triton serves none without one)"],
    ),
    "step names a missing model": (
        _step_names_missing_model,
        ["classification_infer: step 3 names model 'resnet19', which is not in the repository"],
    ),
    "input_map key is no input": (
        _input_map_key_unknown,
        [
            "classification_infer: step 3 (resnet18): input 'data' is not fed (no input_map entry)",
            "classification_infer: step 3 (resnet18): input_map key 'input' is not an input of 'resnet18' "
            "(its inputs: data)",
        ],
    ),
    "input reads an unknown tensor": (
        _input_reads_unknown_tensor,
        [
            "classification_infer: step 3 (resnet18): input 'data' reads tensor 'pixel', which is neither an "
            "ensemble input nor any step's output"
        ],
    ),
    "dtype mismatch": (
        _dtype_mismatch,
        [
            "classification_infer: step 3 (resnet18): input 'data' expects TYPE_FP16, tensor 'pixels' "
            "(classification_preprocess output 'PIXELS') is TYPE_FP32"
        ],
    ),
    "shape mismatch": (
        _shape_mismatch,
        [
            "classification_infer: step 3 (resnet18): input 'data' expects shape [-1, 3, 256, 256], tensor 'pixels' "
            "(classification_preprocess output 'PIXELS') has [-1, 3, 224, 224]"
        ],
    ),
    "output_map key is no output": (
        _output_map_key_unknown,
        [
            "classification_infer: output 'LOGITS' is not produced by any step",
            "classification_infer: step 3 (resnet18): output_map key 'logits' is not an output of 'resnet18' "
            "(its outputs: resnetv15_dense0_fwd)",
        ],
    ),
    "ensemble output not produced": (
        _ensemble_output_not_produced,
        ["classification: output 'LABELS' is not produced by any step"],
    ),
    "step allows fewer images than the ensemble": (
        _step_batch_too_small,
        ["classification_infer: step 3 (resnet18): max_batch_size 8 is below the ensemble's 32"],
    ),
    "python model without model.py": (
        _missing_model_py,
        ["classification_postprocess: the python backend needs 1/model.py, which is missing"],
    ),
    "label_filename missing": (
        _missing_label_filename,
        [
            "classification_postprocess: parameter 'labels' names 'resnet18/imagenet_labels.txt', "
            "which is not a file of the repository",
            "resnet18: output 'resnetv15_dense0_fwd': label_filename 'imagenet_labels.txt' is not a file "
            "(expected resnet18/imagenet_labels.txt)",
        ],
    ),
    "labels parameter names a missing file": (
        _labels_parameter_names_missing_file,
        [
            "classification_postprocess: parameter 'labels' names 'resnet18/labels.txt', "
            "which is not a file of the repository"
        ],
    ),
    "unknown execution accelerator": (
        _unknown_accelerator,
        [
            "resnet18: gpu_execution_accelerator 'tensorrtx' is unknown to the ONNX Runtime backend "
            "(expected one of: cuda, tensorrt)"
        ],
    ),
    "ensemble output reshaped": (
        _ensemble_output_reshaped,
        [
            "classification_infer: 'LOGITS' declares a reshape, which an ensemble cannot use: Triton compares "
            "its reshaped shape [-1, 10, 100] with the steps' served shapes; declare the dims alone"
        ],
    ),
    "dali external source renamed": (
        _dali_external_source_renamed,
        [
            "classification_preprocess: 1/dali.py: fn.external_source 'IMAGES' is not a config input (inputs: IMAGE)",
            "classification_preprocess: input 'IMAGE' has no fn.external_source named 'IMAGE' in 1/dali.py "
            "(its external sources: IMAGES)",
        ],
    ),
    "dali.py does not import": (
        _dali_does_not_import,
        [
            "classification_preprocess: 1/dali.py does not import and serialize: "
            "ModuleNotFoundError: No module named 'nvidia.dalí'"
        ],
    ),
    "dali.py without @autoserialize": (
        _dali_without_autoserialize,
        ["classification_preprocess: 1/dali.py: expected exactly one @autoserialize pipeline_def, found 0"],
    ),
    "dali output count": (
        _dali_output_count,
        ["classification_preprocess: 1/dali.py returns 1 outputs, the config declares 2 (PIXELS, SIZE)"],
    ),
    "onnx input named otherwise": (
        _onnx_input_named_otherwise,
        [
            "resnet18: 1/model.onnx has input 'input', which the config does not declare",
            "resnet18: input 'data' is not in 1/model.onnx (the file's inputs: input)",
        ],
    ),
    "onnx dtype": (
        _onnx_dtype,
        ["resnet18: input 'data': the config says TYPE_FP32, 1/model.onnx has UINT8"],
    ),
    "onnx rank": (
        _onnx_rank,
        ["resnet18: input 'data': the config needs rank 4 [-1, 3, 224, 224], 1/model.onnx has rank 3 [-1, 3, 224]"],
    ),
    "onnx fixed dimension": (
        _onnx_fixed_dimension,
        ["resnet18: input 'data': the config needs shape [-1, 3, 224, 224], 1/model.onnx has [-1, 3, 256, 256]"],
    ),
    "onnx extra input": (
        _onnx_extra_input,
        ["resnet18: 1/model.onnx has input 'scale', which the config does not declare"],
    ),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_broken_repository_is_reported_with_the_exact_message(repository: Path, breakage: str):
    breaks, expected = BREAKAGES[breakage]
    breaks(repository)
    assert sorted(problems(repository)) == sorted(expected)


def test_an_unparsable_config_is_reported_with_the_line_and_protobufs_own_message(repository: Path):
    _unparsable(repository)
    (problem,) = problems(repository)  # the ensemble naming resnet18 adds nothing: one problem, one line
    # Ours up to the position; the rest is text_format's message, whose wording protobuf owns.
    line = (MODEL_REPOSITORY / "resnet18" / "config.pbtxt").read_text().splitlines().index("max_batch_size: 32") + 1
    assert problem.startswith(f"resnet18: config.pbtxt does not parse: {line}:17 : ")
    assert problem.endswith("Couldn't parse integer: thirty-two")


# -- the command ----------------------------------------------------------------------------------------
def test_check_command_exits_0_on_a_good_repository(repository: Path, capsys):
    assert main(["check", str(repository)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"{repository}: 7 models checked, ok"


def test_check_command_exits_1_and_names_the_problem(repository: Path, capsys):
    _shape_mismatch(repository)
    assert main(["check", str(repository)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("PROBLEM: classification_infer: step 3 (resnet18): input 'data' expects shape")
    assert lines[-1] == f"{repository}: 7 models checked, 1 problem"


def test_check_command_json_report_is_machine_readable(repository: Path, capsys):
    _dtype_mismatch(repository)
    assert main(["check", str(repository), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert len(report["problems"]) == 1 and "expects TYPE_FP16" in report["problems"][0]


def test_check_command_on_a_missing_directory_is_one_line_not_a_traceback(tmp_path: Path, capsys):
    assert main(["check", str(tmp_path / "nowhere")]) == 2  # a usage error
    assert capsys.readouterr().err.strip() == (
        f"error: model repository {tmp_path / 'nowhere'} does not exist: `triton-vision init {tmp_path / 'nowhere'}` "
        "writes the built-in one (or pass its path: triton-vision check DIR)"
    )
