"""add-model for task "embedding": the spec's keys and refusals, the generated configs, check, export-repo
and the repository's own account of the ensemble (model_info, the client's task)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import triton_vision_contract as contract
from tests.support.embedders import TOKEN_DIM, TOKEN_SPEC, token_embedder, write_embedders
from tests.support.format_models import toml_text
from tests.support.modelconfigs import load_config, step_models
from triton_vision_authoring.add_model.add_model import add_model
from triton_vision_authoring.add_model.ensemble_spec import SpecError, load_spec
from triton_vision_authoring.check import check_repository
from triton_vision_authoring.export_repo import export_repository
from triton_vision_models.provenance import repository_ensembles
from triton_vision_models.repository import ModelRepository


@pytest.fixture
def token_repository(tmp_path: Path) -> Path:
    (spec,) = write_embedders(tmp_path, resnet=False)
    repository = tmp_path / "repo"
    repository.mkdir()
    add_model(spec, repository)
    return repository


def write_spec(folder: Path, model: onnx.ModelProto | None = None, **changes) -> Path:
    data = {**TOKEN_SPEC, **{k: v for k, v in changes.items() if k != "postprocess"}}
    data["postprocess"] = changes.get("postprocess", TOKEN_SPEC["postprocess"])
    for key in [k for k, v in data.items() if v is None]:
        del data[key]
    onnx.save(model or token_embedder(), str(folder / "token_embed.onnx"))
    path = folder / "token_embed.toml"
    path.write_text(toml_text(data))
    return path


def vector_model(shape: list) -> onnx.ModelProto:
    """Input ``x`` [N, 3, 64, 64] -> output ``emb`` of ``shape``: [N, 3] or [N, 3, 1, 1] (the mean colour), or
    tokens [N, 16, 3] (the 16 patches' mean colours)."""
    if len(shape) == 3:
        nodes = [
            helper.make_node("AveragePool", ["x"], ["grid"], kernel_shape=[16, 16], strides=[16, 16]),
            helper.make_node("Reshape", ["grid", "tokens_shape"], ["flat"]),
            helper.make_node("Transpose", ["flat"], ["emb"], perm=[0, 2, 1]),
        ]
    else:
        nodes = [helper.make_node("ReduceMean", ["x"], ["emb"], axes=[2, 3], keepdims=int(len(shape) == 4))]
    graph = helper.make_graph(
        nodes,
        "vector",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, shape)],
        initializer=[numpy_helper.from_array(np.array([0, 3, 16], np.int64), "tokens_shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def refusal(tmp_path: Path, model=None, **changes) -> str:
    spec = write_spec(tmp_path, model, **changes)
    repository = tmp_path / "repo"
    repository.mkdir(exist_ok=True)
    with pytest.raises(SpecError) as refused:
        add_model(spec, repository)
    return str(refused.value)


def test_the_generated_ensemble_answers_embedding_and_passes_check(token_repository: Path):
    ensemble = load_config(token_repository / "token_embed")
    assert [(o.name, o.data_type, list(o.dims)) for o in ensemble.output] == [("EMBEDDING", 11, [TOKEN_DIM])]
    assert step_models(token_repository, "token_embed") == [
        "token_embed_infer",
        "image_guard",
        "token_embed_preprocess",
        "token_embed_model",
        "token_embed_postprocess",
    ]
    # A whole-image answer: the preprocessing gives the pixels alone (no sizes to map anything back).
    assert [o.name for o in load_config(token_repository / "token_embed_preprocess").output] == ["PIXELS"]
    post = load_config(token_repository / "token_embed_postprocess")
    assert {k: v.string_value for k, v in post.parameters.items()} == {"pooling": "mean", "normalize": "false"}
    assert not list((token_repository / "token_embed_model").glob("*.txt"))  # no label file
    assert "labels" not in (token_repository / "token_embed" / "spec.toml").read_text()
    assert check_repository(token_repository).ok


def test_model_info_and_the_repository_know_the_ensembles_task(token_repository: Path):
    assert repository_ensembles(token_repository) == ["token_embed"]
    assert ModelRepository.load(token_repository)["token_embed"].task == contract.EMBEDDING
    assert contract.task_of(["EMBEDDING"]) == contract.EMBEDDING


def test_export_repo_renames_it_and_the_copy_passes_check(token_repository: Path, tmp_path: Path):
    dest = tmp_path / "theirs"
    export_repository(token_repository, dest, prefix="tv_")
    assert step_models(dest, "tv_token_embed", nested=False)[-1] == "tv_token_embed_postprocess"
    report = check_repository(dest)
    assert [str(p) for p in report.problems] == []


@pytest.mark.parametrize(
    ("shape", "pooling", "dims"),
    [(["N", 3], "none", [3]), (["N", 3, 1, 1], "none", [3]), (["N", 16, 3], "cls", [3]), (["N", "T", 3], "mean", [3])],
)
def test_every_documented_output_shape_is_served(tmp_path: Path, shape, pooling, dims):
    spec = write_spec(tmp_path, vector_model(shape), postprocess={"pooling": pooling})
    repository = tmp_path / "repo"
    repository.mkdir()
    add_model(spec, repository)
    assert list(load_config(repository / "token_embed").output[0].dims) == dims
    assert check_repository(repository).ok


def test_refusals_name_both_sides(tmp_path: Path):
    assert "'labels' applies to tasks with classes, not embedding" in refusal(tmp_path, labels="x.txt")
    message = refusal(tmp_path, postprocess={})
    assert "an embedding is read from an output [batch, dim] or [batch, dim, 1, 1], but output " in message
    assert '\'last_hidden_state\' has shape [-1, 17, 48] (tokens: pooling = "cls" or "mean"?)' in message
    message = refusal(tmp_path, vector_model(["N", 3, 1, 1]), postprocess={"pooling": "cls"})
    assert "pooling = \"cls\" reads tokens [batch, tokens, dim], but output 'emb' has shape [-1, 3, 1, 1]" in message
    assert "[postprocess] 'pooling' must be one of none, cls, mean, got 'max'" in refusal(
        tmp_path, postprocess={"pooling": "max"}
    )
    assert "[postprocess] 'normalize' must be true or false, got 'yes'" in refusal(
        tmp_path, postprocess={"normalize": "yes"}
    )


def test_embedding_keys_belong_to_the_embedding_task(tmp_path: Path):
    path = tmp_path / "pets.toml"
    (tmp_path / "pets.txt").write_text("a\nb\n")
    path.write_text(
        'name = "pets"\ntask = "classification"\nmodel = "pets.onnx"\nlabels = "pets.txt"\n'
        '[preprocess]\nresize = "stretch"\nsize = [64, 64]\n[postprocess]\nnormalize = false\n'
    )
    with pytest.raises(SpecError, match="'normalize' applies to task embedding, not classification"):
        load_spec(path)
