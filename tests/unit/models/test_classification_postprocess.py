from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY
from tests.support.modelconfigs import config_for
from triton_vision_models import tensors as t
from triton_vision_models.classification import ClassificationPostprocessor, parse_top_k, softmax, top_k
from triton_vision_models.errors import ConfigError, InvalidParameterError
from triton_vision_models.model_config import RequestData


def test_softmax_matches_direct_formula_and_sums_to_one():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 5, (3, 1000)).astype(np.float32)
    expected = np.exp(logits.astype(np.float64))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax(logits), expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(softmax(logits).sum(axis=1), 1.0, rtol=1e-5)


def test_softmax_is_stable_for_huge_logits():
    probs = softmax(np.array([[1000.0, 1000.0, -1000.0]], dtype=np.float32))
    np.testing.assert_allclose(probs, [[0.5, 0.5, 0.0]], atol=1e-6)


def test_topk_agrees_with_argsort_reference():
    rng = np.random.default_rng(2)
    scores = rng.random((4, 1000)).astype(np.float32)
    ids, values = top_k(scores, 7)
    reference = np.argsort(scores, axis=1)[:, ::-1][:, :7]
    np.testing.assert_array_equal(ids, reference)
    np.testing.assert_array_equal(values, np.take_along_axis(scores, reference, axis=1))
    assert ids.dtype == np.int32


def test_topk_orders_scores_descending_when_ties_keep_lower_class_id_first():
    scores = np.array([[0.1, 0.3, 0.3, 0.2, 0.3]], dtype=np.float32)
    ids, values = top_k(scores, 4)
    assert ids.tolist() == [[1, 2, 4, 3]]
    np.testing.assert_allclose(values, [[0.3, 0.3, 0.3, 0.2]], rtol=1e-6)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 5), (1, 1), (1000, 1000), ("3", 3), (" 12 ", 12)],
)
def test_parse_top_k_accepts_integers_in_range(raw, expected):
    parameters = {} if raw is None else {t.TOP_K: raw}
    assert parse_top_k(parameters, 1000) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (0, "1..1000, got 0"),
        (1001, "1..1000, got 1001"),
        (-3, "got -3"),
        ("five", "got 'five'"),
        (True, "boolean"),
        (2.5, "float"),
    ],
)
def test_parse_top_k_rejects_bad_values_with_a_message_naming_them(raw, message):
    with pytest.raises(InvalidParameterError, match="top_k") as info:
        parse_top_k({t.TOP_K: raw}, 1000)
    assert message in str(info.value)


def test_postprocessor_returns_k_labels_from_the_repository_label_file():
    config = config_for(MODEL_REPOSITORY / t.CLASSIFICATION_POSTPROCESS)
    runner = ClassificationPostprocessor.from_config(config)
    logits = np.full((2, 1000), -5.0, dtype=np.float32)
    logits[0, 281] = 9.0  # tabby
    logits[1, 207] = 9.0  # golden retriever
    (out,) = runner([RequestData(inputs={t.LOGITS: logits}, parameters={t.TOP_K: 2})])
    assert out[t.CLASS_IDS].shape == (2, 2)
    assert out[t.CLASS_IDS][:, 0].tolist() == [281, 207]
    assert out[t.LABELS][0, 0] == b"tabby, tabby cat"
    assert out[t.LABELS][1, 0] == b"golden retriever"
    assert out[t.SCORES][0, 0] == pytest.approx(np.exp(9) / (np.exp(9) + 999 * np.exp(-5)), rel=1e-5)


def test_postprocessor_refuses_a_label_file_of_the_wrong_length(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    config = config_for(MODEL_REPOSITORY / t.CLASSIFICATION_POSTPROCESS)
    config = type(config)(
        **{**config.__dict__, "repository_dir": tmp_path / "post", "parameters": {"labels": "labels.txt"}}
    )
    with pytest.raises(ConfigError, match="1000 classes, label file has 2"):
        ClassificationPostprocessor.from_config(config)


def test_parameters_sent_as_strings_by_string_only_clients_are_accepted():
    from triton_vision_models.parameters import bool_parameter, float_parameter

    assert float_parameter({"p": "0.25"}, "p", 0.5, minimum=0.0, maximum=1.0) == 0.25
    assert bool_parameter({"p": "TRUE"}, "p", False) is True
    with pytest.raises(InvalidParameterError, match=r"'p' must be a number in \[0, 1\], got 2"):
        float_parameter({"p": 2}, "p", 0.5, minimum=0.0, maximum=1.0)


def test_a_model_with_fewer_classes_than_the_default_top_k_answers_all_of_them():
    runner = ClassificationPostprocessor(["a", "b", "c"], default_top_k=5)
    (out,) = runner([RequestData(inputs={t.LOGITS: np.array([[0.0, 2.0, 1.0]], np.float32)})])
    assert out[t.LABELS].tolist() == [[b"b", b"c", b"a"]]


def test_probabilities_are_not_softmaxed_again():
    runner = ClassificationPostprocessor(["background", "cat", "dog"], output="probabilities")
    (out,) = runner([RequestData(inputs={t.LOGITS: np.array([[[0.1, 0.7, 0.2]]], np.float32)})])
    np.testing.assert_allclose(out[t.SCORES], [[0.7, 0.2, 0.1]], rtol=1e-6)
    assert out[t.CLASS_IDS].tolist() == [[1, 2, 0]]


def test_an_unknown_request_parameter_is_refused_naming_the_known_ones():
    runner = ClassificationPostprocessor(["a", "b"])
    request = RequestData(inputs={t.LOGITS: np.zeros((1, 2), np.float32)}, parameters={"top_kk": 1})
    with pytest.raises(
        InvalidParameterError, match=r"^unknown request parameter 'top_kk' \(this ensemble takes: top_k\)$"
    ):
        runner([request])
