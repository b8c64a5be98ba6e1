"""Every config.pbtxt parses with Triton's protobuf, and every ensemble is wired consistently."""

from __future__ import annotations

from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2

from tests.conftest import MODEL_REPOSITORY
from tests.support.modelconfigs import load_config, step_models
from triton_vision_authoring import check as repocheck
from triton_vision_models import tensors as t

MODEL_DIRS = sorted(p.parent for p in MODEL_REPOSITORY.glob("*/config.pbtxt"))
CONFIGS = {d.name: load_config(d) for d in MODEL_DIRS}
ENSEMBLES = [name for name, c in CONFIGS.items() if c.platform == "ensemble"]
# The ensembles clients call: those no other ensemble runs as a step (NAME_infer is one's step).
NESTED = {s.model_name for c in CONFIGS.values() for s in c.ensemble_scheduling.step if s.model_name in ENSEMBLES}
CALLED = [name for name in ENSEMBLES if name not in NESTED]


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=lambda p: p.name)
def test_config_parses_and_is_named_after_its_directory(model_dir: Path):
    config = CONFIGS[model_dir.name]
    assert config.name == model_dir.name
    assert (model_dir / "1").is_dir(), "version folder 1/ must exist (tracked with a .gitkeep if empty)"


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=lambda p: p.name)
def test_config_has_no_absolute_paths(model_dir: Path):
    config = CONFIGS[model_dir.name]
    for key, value in config.parameters.items():
        assert not value.string_value.startswith("/"), f"{model_dir.name}: parameter {key} is absolute"
    for output in config.output:
        if output.label_filename:
            assert not output.label_filename.startswith("/")
            assert (model_dir / output.label_filename).is_file(), output.label_filename


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=lambda p: p.name)
def test_python_models_have_model_py_and_label_files(model_dir: Path):
    config = CONFIGS[model_dir.name]
    if config.backend == "python":
        assert (model_dir / "1" / "model.py").is_file()
    if config.backend == "dali":
        assert (model_dir / "1" / "dali.py").is_file()
    labels = config.parameters.get("labels")
    if labels is not None:
        assert (MODEL_REPOSITORY / labels.string_value).is_file(), labels.string_value


@pytest.mark.parametrize("name", ENSEMBLES)
def test_ensemble_steps_are_wired_with_matching_names_dtypes_and_shapes(name: str):
    # The wiring rules live in the `check` command (one implementation); tests/unit/authoring/test_check.py
    # shows that each rule fails on a repository broken that way.
    assert repocheck.check_ensemble(name, CONFIGS) == []


def test_model_repository_passes_check_including_dali_pipelines_and_present_onnx_files():
    report = repocheck.check_repository(MODEL_REPOSITORY)
    assert [str(p) for p in report.problems] == []
    assert sorted(report.models) == sorted(CONFIGS)


@pytest.mark.parametrize("name", ENSEMBLES)
def test_every_ensemble_takes_one_encoded_image_per_batch_element(name: str):
    (image,) = CONFIGS[name].input
    assert image.name == t.IMAGE
    assert image.data_type == model_config_pb2.TYPE_UINT8
    assert list(image.dims) == [-1]


def test_classification_names_agree_with_the_tensors_module():
    ens = CONFIGS[t.CLASSIFICATION]
    assert [o.name for o in ens.output] == [t.CLASS_IDS, t.SCORES, t.LABELS]
    classifier = CONFIGS[t.CLASSIFIER]
    assert classifier.platform == "onnxruntime_onnx"
    assert [i.name for i in classifier.input] == [t.CLASSIFIER_INPUT]
    assert [o.name for o in classifier.output] == [t.CLASSIFIER_OUTPUT]
    assert list(classifier.input[0].dims) == [3, t.CLASSIFIER_INPUT_SIZE, t.CLASSIFIER_INPUT_SIZE]
    assert [o.name for o in CONFIGS[t.CLASSIFICATION_PREPROCESS].output] == [t.PIXELS]
    assert [i.name for i in CONFIGS[t.CLASSIFICATION_POSTPROCESS].input] == [t.LOGITS]


def test_client_batch_sizes_equal_the_ensembles_max_batch_size():
    assert CONFIGS[t.CLASSIFICATION].max_batch_size == t.CLASSIFICATION_MAX_BATCH
    assert CONFIGS[t.SEGMENTATION].max_batch_size == t.SEGMENTATION_MAX_BATCH
    assert CONFIGS[t.DETECTION].max_batch_size == t.DETECTION_MAX_BATCH


# -- the bare models speak Triton's conventions (the reference image client, class_count) -----
BARE_IMAGE_MODELS = [t.CLASSIFIER, t.SEGMENTER, t.DETECTOR]  # FP32 CHW image inputs a client can feed itself


@pytest.mark.parametrize("name", BARE_IMAGE_MODELS)
def test_bare_models_declare_their_image_input_as_nchw(name: str):
    """Triton's image_client.py refuses an input whose format is FORMAT_NONE."""
    image = CONFIGS[name].input[0]
    assert image.format == model_config_pb2.ModelInput.FORMAT_NCHW, f"{name}.{image.name}"
    assert image.data_type == model_config_pb2.TYPE_FP32
    assert len(image.dims) == 3 and image.dims[0] == 3, "NCHW: three channels first"
    assert CONFIGS[name].max_batch_size > 0


def test_resnet18_meets_the_reference_image_clients_requirements():
    """image_client.py's checks: one input (3 dims besides the batch, NCHW/NHWC), one FP32 vector output."""
    classifier = CONFIGS[t.CLASSIFIER]
    (image,) = classifier.input
    (logits,) = classifier.output
    assert list(image.dims) == [3, t.CLASSIFIER_INPUT_SIZE, t.CLASSIFIER_INPUT_SIZE]
    assert logits.data_type == model_config_pb2.TYPE_FP32
    assert [d for d in logits.dims if d > 1] == [1000], "output must be a vector"


def test_resnet18_output_names_a_label_file_with_one_line_per_class():
    """label_filename drives the classification extension (class_count): one label per logit."""
    (logits,) = CONFIGS[t.CLASSIFIER].output
    assert logits.label_filename
    labels = (MODEL_REPOSITORY / t.CLASSIFIER / logits.label_filename).read_text().splitlines()
    assert len(labels) == logits.dims[0] == 1000
    assert labels[281].startswith("tabby") and labels[0].startswith("tench")


@pytest.mark.parametrize("name", CALLED)
def test_model_analyzer_names_every_composing_model_of_the_ensemble(name: str):
    """Model Analyzer keeps exactly these on the CPU; a step it does not know would ask for a GPU."""
    from triton_vision_bench.model_analyzer import composing_models

    assert composing_models(MODEL_REPOSITORY, name) == step_models(MODEL_REPOSITORY, name, nested=False)
