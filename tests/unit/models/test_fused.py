"""A fused ensemble (triton_vision_models.fused): the steps' own runners, called in one process in
step order, give what the ensemble's steps give, request by request."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support import fake_pb_utils as pb

STEP = """
import numpy as np
from triton_vision_models.errors import InvalidInputError
from triton_vision_models.triton_adapter import python_model


class Runner:
    def __init__(self, config):
        self.config = config
        self.calls = []

    def __call__(self, requests):
        self.calls.append(len(requests))
        if any(float(r.inputs["{input}"].sum()) == 999 for r in requests):
            raise RuntimeError("a batch that fails as a whole")
        answers = []
        for r in requests:
            x = r.inputs["{input}"]
            if (x < 0).any():
                answers.append(InvalidInputError("model '{name}': negative input"))
                continue
            answers.append({{"{output}": {expression}}})
        return answers


TritonPythonModel = python_model(Runner)
"""


def python_step(root: Path, name: str, source: str, target: str, expression: str, in_type: str, out_type: str) -> None:
    (root / name / "1").mkdir(parents=True)
    (root / name / "1" / "model.py").write_text(
        STEP.format(input=source, output=target, expression=expression, name=name)
    )
    (root / name / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: 8\n'
        f'input [ {{ name: "{source}" data_type: {in_type} dims: [ 3 ] }} ]\n'
        f'output [ {{ name: "{target}" data_type: {out_type} dims: [ 3 ] }} ]\n'
        'parameters { key: "factor" value: { string_value: "2" } }\n'
    )


def ensemble(
    root: Path, name: str, steps: list[tuple[str, dict[str, str], dict[str, str]]], inp: str, out: str
) -> None:
    (root / name / "1").mkdir(parents=True)
    text = [
        f'name: "{name}"\nplatform: "ensemble"\nmax_batch_size: 8\n',
        f'input [ {{ name: "{inp}" data_type: TYPE_FP32 dims: [ 3 ] }} ]\n',
        f'output [ {{ name: "{out}" data_type: TYPE_FP32 dims: [ 3 ] }} ]\n',
        "ensemble_scheduling { step [\n",
    ]
    for index, (model, inputs, outputs) in enumerate(steps):
        maps = "".join(f' input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items())
        maps += "".join(f' output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items())
        text.append(("," if index else "") + f'{{ model_name: "{model}" model_version: -1{maps} }}\n')
    text.append("] }\n")
    (root / name / "config.pbtxt").write_text("".join(text))


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """top(X) = double(X) + 1, where double runs inside the nested ensemble 'inner'; double answers
    float64 (its config declares FP32) and refuses negative inputs."""
    root = tmp_path / "repository"
    python_step(root, "double", "A", "B", "(x * 2).astype(np.float64)", "TYPE_FP32", "TYPE_FP32")
    python_step(root, "add_one", "C", "D", "x + 1 + float(r.parameters.get('offset', 0))", "TYPE_FP32", "TYPE_FP32")
    ensemble(root, "inner", [("double", {"A": "X"}, {"B": "DOUBLED"})], "X", "DOUBLED")
    ensemble(
        root,
        "top",
        [("inner", {"X": "IN"}, {"DOUBLED": "mid"}), ("add_one", {"C": "mid"}, {"D": "OUT"})],
        "IN",
        "OUT",
    )
    (root / "top" / "ensemble.pbtxt").write_text((root / "top" / "config.pbtxt").read_text())
    return root


def fused(root: Path, parameters: dict[str, str] | None = None):
    from triton_vision_models.fused import FusedEnsemble
    from triton_vision_models.model_config import ModelConfig

    config = {
        "name": "top",
        "max_batch_size": 8,
        "input": [{"name": "IN", "data_type": "TYPE_FP32", "dims": ["3"]}],
        "output": [{"name": "OUT", "data_type": "TYPE_FP32", "dims": ["3"]}],
        "parameters": {k: {"string_value": v} for k, v in (parameters or {}).items()},
    }
    args = {"model_config": json.dumps(config), "model_repository": str(root / "top"), "model_version": "1"}
    return FusedEnsemble.from_config(ModelConfig.from_triton_args(args))


def request(values, **parameters):
    from triton_vision_models.model_config import RequestData

    return RequestData(inputs={"IN": np.asarray([values], dtype=np.float32)}, parameters=parameters)


def test_tensors_pass_from_step_to_step_through_a_nested_ensemble(repository):
    with pb.installed():
        model = fused(repository)
        answers = model([request([1, 2, 3]), request([0, 0, 5], offset=10)])
    assert [s.config.name for s in model.steps] == ["double", "add_one"]
    np.testing.assert_array_equal(answers[0]["OUT"], [[3, 5, 7]])
    np.testing.assert_array_equal(answers[1]["OUT"], [[11, 11, 21]])  # the request's parameters reach each step
    assert answers[0]["OUT"].dtype == np.float32  # double's float64 passed on as its config declares
    assert model.steps[0].runner.calls == [2]  # one batch per step, as a served step runs them


def test_a_refused_request_fails_alone_with_its_steps_message(repository):
    with pb.installed():
        answers = fused(repository)([request([1, 1, 1]), request([-1, 0, 0]), request([2, 2, 2])])
    # in Triton's words for an ensemble step's error: each ensemble it runs in, outermost first
    assert str(answers[1]) == "in ensemble 'top', in ensemble 'inner', model 'double': negative input"
    assert type(answers[1]).__name__ == "InvalidInputError"  # the same status (INVALID_ARG)
    np.testing.assert_array_equal(answers[0]["OUT"], [[3, 3, 3]])
    np.testing.assert_array_equal(answers[2]["OUT"], [[5, 5, 5]])


def test_a_batch_that_fails_as_a_whole_is_run_again_request_by_request(repository):
    with pb.installed():
        model = fused(repository)
        answers = model([request([1, 1, 1]), request([333, 333, 333])])
    assert isinstance(answers[1], RuntimeError)
    np.testing.assert_array_equal(answers[0]["OUT"], [[3, 3, 3]])
    assert model.steps[0].runner.calls == [2, 1, 1]


def test_a_request_that_does_not_fit_a_step_is_refused_naming_the_step(repository):
    from triton_vision_models.errors import InvalidInputError
    from triton_vision_models.model_config import RequestData

    with pb.installed():
        answers = fused(repository)([RequestData({"IN": np.zeros((1, 4), np.float32)}), request([1, 1, 1])])
    assert isinstance(answers[0], InvalidInputError)
    assert str(answers[0]) == (
        "in ensemble 'top', in ensemble 'inner', model 'double', input 'A': expected dims [3], got [4] (axis 0)"
    )
    np.testing.assert_array_equal(answers[1]["OUT"], [[3, 3, 3]])


def test_a_setting_for_every_step_of_a_kind_reaches_their_configs(repository):
    with pb.installed():
        model = fused(repository, {"python.factor": "5", "dali.num_threads": "1"})
    assert [s.config.parameters["factor"] for s in model.steps] == ["5", "5"]
    assert all("num_threads" not in s.config.parameters for s in model.steps)


def test_a_step_that_is_not_a_project_model_is_refused_when_loading(repository):
    from triton_vision_models.errors import ConfigError

    (repository / "add_one" / "1" / "model.py").write_text("class TritonPythonModel:\n    pass\n")
    with pb.installed(), pytest.raises(ConfigError, match="not a triton-vision model"):
        fused(repository)
