"""add-model for the yolov5 and yolox detection formats: generated configs, check, and refusals naming
both sides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.format_models import write_case
from tests.support.modelconfigs import load_config
from tests.support.yolo_family import LABELS, SPECS, yolov5_detector
from triton_vision_authoring.add_model.add_model import add_model
from triton_vision_authoring.add_model.ensemble_spec import SpecError
from triton_vision_authoring.check import check_repository


def write(folder: Path, name: str, model=None, labels=LABELS, **changes) -> Path:
    build, preprocess, postprocess = SPECS[name]
    return write_case(
        folder,
        name,
        "detection",
        model if model is not None else build(),
        labels,
        {**preprocess, **changes.get("preprocess", {})},
        {**postprocess, **changes.get("postprocess", {})},
    )


@pytest.mark.parametrize("name", ["v5", "yx"])
def test_each_format_is_written_with_its_nms_parameter_and_passes_check(tmp_path: Path, name):
    repository = tmp_path / "repo"
    repository.mkdir()
    add_model(write(tmp_path, name, postprocess={"iou_threshold": 0.5}), repository)
    post = load_config(repository / f"{name}_postprocess")
    parameters = {k: v.string_value for k, v in post.parameters.items()}
    assert parameters["format"] == {"v5": "yolov5", "yx": "yolox"}[name]
    assert parameters["default_iou_threshold"] == "0.5"
    assert [list(i.dims) for i in post.input if i.name == "RAW_PREDICTIONS"] == [[5, 7] if name == "v5" else [126, 7]]
    assert check_repository(repository).ok
    assert "iou_threshold" in (repository / f"{name}_infer" / "config.pbtxt").read_text()


def refusal(tmp_path: Path, name: str, **kwargs) -> str:
    repository = tmp_path / "repo"
    repository.mkdir(exist_ok=True)
    with pytest.raises(SpecError) as refused:
        add_model(write(tmp_path, name, **kwargs), repository)
    return str(refused.value)


def test_a_yolox_file_for_another_input_size_is_refused_naming_both(tmp_path: Path):
    message = refusal(tmp_path, "yx", preprocess={"size": [64, 64]})
    # The file's input is 64x96: the size check speaks first.
    assert "[preprocess] size = [64, 64] but input 'images' has shape [-1, 3, 64, 96]" in message


def test_a_yolox_export_that_decodes_itself_is_refused_by_its_row_count(tmp_path: Path):
    message = refusal(tmp_path, "yx", model=yolov5_detector(64, 96))
    assert (
        "[preprocess] size = [64, 96] has 126 cells in YOLOX's stride 8/16/32 grids, but output 'output0' has 5 rows"
        in message
    )


def test_class_columns_must_match_the_label_file(tmp_path: Path):
    message = refusal(tmp_path, "v5", labels=("red",))
    assert (
        "output 'output0' has 7 columns (4 box + objectness + 2 classes), the label file v5.txt has 1 lines" in message
    )
