"""The local DALI backend's memory bound: sub-batches under a pixel budget, rebuilds after big ones."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY
from tests.support.images import png_header_only
from tests.support.modelconfigs import config_for
from triton_vision_models import tensors as t
from triton_vision_models.dali_runner import (
    DEFAULT_MAX_BATCH_PIXELS,
    DEFAULT_RELEASE_ABOVE_PIXELS,
    DaliRunner,
    plan_sub_batches,
)
from triton_vision_models.errors import ConfigError
from triton_vision_models.model_config import RequestData


def test_sub_batches_keep_order_and_stay_within_the_pixel_budget():
    pixels = [10, 10, 10, 25, 5, 5, 40, 1]
    runs = plan_sub_batches(pixels, max_count=32, max_pixels=30)
    assert [list(r) for r in runs] == [[0, 1, 2], [3, 4], [5], [6], [7]]
    assert all(sum(pixels[i] for i in r) <= 30 for r in runs if len(r) > 1)


def test_an_image_above_the_budget_runs_alone():
    assert [list(r) for r in plan_sub_batches([1, 100, 1], max_count=8, max_pixels=10)] == [[0], [1], [2]]


def test_sub_batches_also_respect_the_sample_count():
    assert [len(r) for r in plan_sub_batches([0] * 70, max_count=32, max_pixels=10)] == [32, 32, 6]


def test_bad_limits_are_a_config_error():
    with pytest.raises(ConfigError, match="positive"):
        plan_sub_batches([1], max_count=1, max_pixels=0)


def test_dali_configs_declare_the_documented_budgets():
    for name in (t.CLASSIFICATION_PREPROCESS, t.DETECTION_PREPROCESS, t.SEGMENTATION_PREPROCESS):
        config = config_for(MODEL_REPOSITORY / name)
        assert config.int_setting("max_batch_pixels", 0) == DEFAULT_MAX_BATCH_PIXELS, name
        assert config.int_setting("release_above_pixels", -1) == DEFAULT_RELEASE_ABOVE_PIXELS, name


def encoded(height: int, width: int, value: int) -> bytes:
    ok, data = cv2.imencode(".png", np.full((height, width, 3), value, np.uint8))
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def small_budget_runner() -> DaliRunner:
    """Classification preprocessing whose budget is two 200x200 images; rebuilt above one."""
    config = config_for(MODEL_REPOSITORY / t.CLASSIFICATION_PREPROCESS)
    config = dataclasses.replace(
        config, parameters={**config.parameters, "max_batch_pixels": "80000", "release_above_pixels": "40000"}
    )
    return DaliRunner.from_config(config)


def test_split_execution_answers_each_image_as_when_it_runs_alone(small_budget_runner):
    images = [encoded(200, 200, v) for v in (0, 60, 120, 180, 240)] + [encoded(300, 300, 90)]
    alone = [
        small_budget_runner([RequestData({t.IMAGE: np.frombuffer(d, np.uint8)[None]})])[0][t.PIXELS][0] for d in images
    ]
    batch = np.zeros((len(images), max(map(len, images))), np.uint8)
    for row, data in enumerate(images):
        batch[row, : len(data)] = np.frombuffer(data, np.uint8)
    before = small_budget_runner.rebuilds
    requests = [RequestData({t.IMAGE: batch[:4]}), RequestData({t.IMAGE: batch[4:]})]
    together = small_budget_runner(requests)
    pixels = np.concatenate([together[0][t.PIXELS], together[1][t.PIXELS]])
    np.testing.assert_array_equal(pixels, np.stack(alone))
    # sub-batches: [0,1] 80000 px, [2,3] 80000, [4] 40000, [5] 90000 -> three above 40000 rebuild
    assert small_budget_runner.rebuilds - before == 3


def test_header_only_pixels_count_for_the_budget_even_when_decoding_fails(small_budget_runner):
    bogus = np.frombuffer(png_header_only(300, 300), np.uint8)[None]  # header says 90000 px, no data
    before = small_budget_runner.rebuilds
    (out,) = small_budget_runner([RequestData({t.IMAGE: bogus})])
    assert isinstance(out, Exception)
    assert small_budget_runner.rebuilds > before
