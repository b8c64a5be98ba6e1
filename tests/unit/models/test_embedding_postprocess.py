"""The embedding runner against references written here: pooling and the L2 rule element by element."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.support.embedders import TOKEN_DIM, write_embedders
from tests.support.modelconfigs import config_for
from triton_vision_authoring.add_model.add_model import add_model
from triton_vision_models import tensors as t
from triton_vision_models.embedding import EmbeddingPostprocessor
from triton_vision_models.errors import ConfigError, InferenceError, InvalidInputError, InvalidParameterError
from triton_vision_models.model_config import RequestData


def unit(vector) -> list[float]:
    """x / max(sqrt(sum of squares), 1e-12), in Python floats."""
    norm = math.sqrt(sum(float(v) ** 2 for v in vector))
    return [float(v) / max(norm, 1e-12) for v in vector]


def run(runner: EmbeddingPostprocessor, values: np.ndarray, **parameters) -> np.ndarray:
    (out,) = runner([RequestData({t.RAW_EMBEDDING: values}, parameters)])
    assert set(out) == {t.EMBEDDING_OUTPUT} and out[t.EMBEDDING_OUTPUT].dtype == np.float32
    return out[t.EMBEDDING_OUTPUT]


@pytest.mark.parametrize("shape", [(3, 7), (3, 7, 1, 1)])
def test_a_vector_per_image_comes_back_unit_length(shape):
    values = np.random.default_rng(0).normal(0, 3, shape).astype(np.float32)
    got = run(EmbeddingPostprocessor(), values)
    flat = values.reshape(3, 7)
    np.testing.assert_allclose(got, [unit(row) for row in flat], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-6)


def test_normalize_false_keeps_the_models_scale_and_a_zero_vector_stays_zero():
    values = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(run(EmbeddingPostprocessor(normalize=False), values), values)
    np.testing.assert_allclose(run(EmbeddingPostprocessor(), values), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-7)


def test_cls_pooling_takes_the_first_token_and_mean_pooling_averages_every_token():
    tokens = np.random.default_rng(1).normal(0, 1, (2, 5, 4)).astype(np.float32)
    cls = run(EmbeddingPostprocessor(pooling="cls", normalize=False), tokens)
    np.testing.assert_array_equal(cls, tokens[:, 0, :])
    mean = run(EmbeddingPostprocessor(pooling="mean", normalize=False), tokens)
    expected = [[sum(float(tokens[b, i, d]) for i in range(5)) / 5 for d in range(4)] for b in range(2)]
    np.testing.assert_allclose(mean, expected, rtol=1e-6)
    np.testing.assert_allclose(
        run(EmbeddingPostprocessor(pooling="mean"), tokens), [unit(row) for row in expected], rtol=1e-6
    )


def test_shapes_the_rule_cannot_read_are_refused_naming_model_input_and_shape():
    runner = EmbeddingPostprocessor(pooling="cls", name="my_post")
    where = r"model 'my_post', input 'RAW_EMBEDDING'"
    with pytest.raises(InvalidInputError, match=where + r".*\[batch, tokens, dim\], got shape \[2, 8\]"):
        run(runner, np.zeros((2, 8), np.float32))
    with pytest.raises(InvalidInputError, match=r"\[batch, dim\] or \[batch, dim, 1, 1\], got shape \[2, 8, 2, 2\]"):
        run(EmbeddingPostprocessor(name="my_post"), np.zeros((2, 8, 2, 2), np.float32))


def test_a_non_finite_output_is_an_error_not_a_nan_embedding():
    values = np.ones((3, 4), np.float32)
    values[1, 2] = np.nan
    with pytest.raises(InferenceError, match="image 1 is not finite"):
        run(EmbeddingPostprocessor(), values)


def test_request_parameters_are_refused_it_takes_none():
    with pytest.raises(InvalidParameterError, match="unknown request parameter 'top_k' .*takes: none"):
        run(EmbeddingPostprocessor(), np.ones((1, 4), np.float32), top_k=3)


def test_a_bad_pooling_or_normalize_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="'pooling' must be one of none, cls, mean, got 'max'"):
        EmbeddingPostprocessor(pooling="max")


def test_the_generated_postprocess_config_sets_the_runner_up(tmp_path: Path):
    (spec,) = write_embedders(tmp_path, resnet=False)
    repository = tmp_path / "repo"
    repository.mkdir()
    add_model(spec, repository)
    config = config_for(repository / "token_embed_postprocess")
    runner = EmbeddingPostprocessor.from_config(config)
    assert (runner.pooling, runner.normalize) == ("mean", False)
    assert config.input(t.RAW_EMBEDDING).dims == (17, TOKEN_DIM)
    assert config.output(t.EMBEDDING_OUTPUT).dims == (TOKEN_DIM,)
