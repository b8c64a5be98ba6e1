"""Model Analyzer profiles no ensemble with an ensemble among its steps: the repository it is given has the
cached image part (NAME_infer) inlined. Checked against the same spec generated without the cache, whose
ensemble runs the same steps directly (the generator's own flat wiring, apart from the code under test)."""

from __future__ import annotations

import pytest

from tests.support import format_models as fs
from tests.support.modelconfigs import load_config
from triton_vision_authoring.add_model.add_model import add_model
from triton_vision_bench.model_analyzer import flattened_repository, model_analyzer_config
from triton_vision_contract.errors import UsageError


def wiring(config) -> list[tuple[str, list[str], list[str]]]:
    """Each step's model with the ensemble inputs/outputs its tensors are (internal ones as '~'): the
    shape of the graph, whatever the internal tensors are called."""
    ends = {i.name for i in config.input} | {o.name for o in config.output}

    def named(tensors) -> list[str]:
        return [f"{key}={value if value in ends else '~'}" for key, value in sorted(tensors.items())]

    return [(s.model_name, named(s.input_map), named(s.output_map)) for s in config.ensemble_scheduling.step]


def produced_before_use(config) -> bool:
    available = {i.name for i in config.input}
    for step in config.ensemble_scheduling.step:
        if not set(step.input_map.values()) <= available:
            return False
        available |= set(step.output_map.values())
    return {o.name for o in config.output} <= available


@pytest.fixture
def repositories(tmp_path):
    cached, flat = tmp_path / "cached", tmp_path / "flat"
    for repository, cache in ((cached, True), (flat, False)):
        repository.mkdir()
        add_model(fs.write_format_spec(tmp_path / f"specs-{cache}", "yolo", cache=cache), repository)
    return cached, flat


def test_the_nested_image_part_is_inlined_into_the_steps_a_flat_ensemble_has(repositories, tmp_path):
    cached, flat = repositories
    assert load_config(cached / "yolo_infer").platform == "ensemble"
    target = flattened_repository(cached, "yolo", tmp_path / "ma" / "model_repository")
    config = load_config(target / "yolo")
    assert wiring(config) == wiring(load_config(flat / "yolo"))
    assert produced_before_use(config)
    assert [s.model_name for s in config.ensemble_scheduling.step] == [
        "image_guard",
        "yolo_preprocess",
        "yolo_model",
        "yolo_postprocess",
    ]
    # the other models are the originals, untouched
    assert (target / "yolo_model").resolve() == (cached / "yolo_model").resolve()
    assert (cached / "yolo" / "config.pbtxt").read_text() != (target / "yolo" / "config.pbtxt").read_text()


def test_an_ensemble_without_nested_ensembles_is_profiled_from_its_own_repository(repositories, tmp_path):
    _, flat = repositories
    assert flattened_repository(flat, "yolo", tmp_path / "unused") == flat
    assert not (tmp_path / "unused").exists()


def test_the_config_names_every_composing_model_cpu_only_and_no_nested_ensemble(repositories, tmp_path):
    cached, _ = repositories
    config = model_analyzer_config(
        ensemble="yolo", model_repository=cached, input_data=tmp_path / "in.json", workdir=tmp_path / "ma"
    )
    assert config["cpu_only_composing_models"] == ["image_guard", "yolo_preprocess", "yolo_model", "yolo_postprocess"]


def test_a_name_that_is_no_ensemble_is_a_usage_error(repositories, tmp_path):
    cached, _ = repositories
    with pytest.raises(UsageError, match="'yolo_model' is not an ensemble of .*its ensembles: yolo"):
        flattened_repository(cached, "yolo_model", tmp_path / "ma")
