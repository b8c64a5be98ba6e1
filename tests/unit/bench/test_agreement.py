"""Box agreement of two detectors (``bench --compare-onnx``): IoU, one match per box, same labels only."""

from __future__ import annotations

import numpy as np
import pytest

from triton_vision_bench.agreement import iou, matched


def found(*boxes: tuple[float, float, float, float, int]) -> dict[str, np.ndarray]:
    array = np.array([b[:4] for b in boxes], np.float32).reshape(-1, 4)
    return {"boxes": array, "labels": np.array([b[4] for b in boxes], np.int64)}


def test_iou_of_boxes_by_hand():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou(a, b), [[1.0, 50 / 150, 0.0]], rtol=1e-6)


def test_boxes_agree_with_the_same_label_and_enough_overlap_each_matched_once():
    served = found((0, 0, 10, 10, 1), (20, 20, 40, 40, 2))
    other = found((1, 1, 10, 10, 1), (0, 0, 10, 10, 1), (20, 20, 40, 40, 3))
    # Both of other's label-1 boxes overlap served's first; only one may take it. The third has another label.
    assert matched(served, other) == 1
    assert matched(served, found((6, 0, 16, 10, 1))) == 0  # IoU 4/16 = 0.25, below 0.5
    assert matched(served, served) == 2
    assert matched(found(), served) == 0


@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_the_overlap_threshold_decides(threshold):
    pair = (found((0, 0, 10, 10, 1)), found((0, 0, 10, 5, 1)))  # IoU 0.5
    assert matched(*pair, threshold=threshold) == int(threshold <= 0.5)


def test_detectors_are_compared_by_output_role_whatever_their_names(tmp_path):
    """The built-in detector's outputs are the model zoo's 6379/6383/6381, without a count: the comparison
    reads them by the roles the ensemble feeds them to. A file compared with itself agrees on every box."""
    import onnx

    from tests.conftest import ensemble_repository
    from tests.support.detection import bright_box_detector, bright_rectangle_image, encode
    from triton_vision_authoring import models as model_files
    from triton_vision_bench.agreement import compare_detectors, output_roles
    from triton_vision_bench.images import BenchImage
    from triton_vision_bench.profiles import profile
    from triton_vision_models import tensors as t
    from triton_vision_models.repository import ModelRepository

    repository = ensemble_repository(tmp_path / "repo", t.DETECTION)
    onnx.save(bright_box_detector(), str(tmp_path / "bright.onnx"))
    model_files.prepare(repository, model_files.CATALOGUE[t.DETECTOR], from_path=tmp_path / "bright.onnx")
    detection = profile(ModelRepository.load(repository), t.DETECTION)
    assert output_roles(detection) == {"boxes": "6379", "scores": "6383", "labels": "6381"}
    images = [
        BenchImage(f"box{i}.png", encode(bright_rectangle_image(120, 160, box), ".png"), 160, 120)
        for i, box in enumerate([(10, 20, 60, 90), (100, 5, 150, 40)])
    ]
    found = compare_detectors(detection, images, repository / t.DETECTOR / "1" / "model.onnx")
    assert found["totals"] == {"served": 2, "other": 2, "agree": 2} and found["agreement"] == 1.0
