"""``add-model --verify``: which folder is which class, the variants, the rule of "clearly better", and
the real classifiers of ../shared on real photos (a correct spec passes; BGR and a wrong scaling are
caught and the better alternative named; the table's numbers equal a computation made here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path
from tests.support.verify import (
    LABELS_1001,
    MOBILENET_V1,
    V1_PREPROCESS,
    V2_PREPROCESS,
    v1_spec,
    v2_spec,
    write_photos,
)
from triton_vision_authoring.add_model import verify
from triton_vision_authoring.add_model.verify import (
    Outcome,
    Variant,
    VerifyError,
    class_folders,
    compare,
    sign_test_p,
    variants,
    verify_spec,
)
from triton_vision_authoring.add_model.verify_report import report_lines
from triton_vision_models import geometry
from triton_vision_models.preprocessing import PreprocessSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP = geometry.ResizeRule(geometry.SHORTER_CROP, (224, 224), 256)


# -- pure code ---------------------------------------------------------------------------------------
def test_folders_are_named_by_whole_lines_or_the_part_before_the_first_comma(tmp_path):
    labels = ["tench, Tinca tinca", "tabby, tabby cat", "crane", "crane", "Egyptian cat", "maillot, tank suit"]
    for name in ("tabby", "Egyptian Cat", "tench, Tinca tinca", "crane", "maillot", "unicorn", ".hidden"):
        (tmp_path / name).mkdir()
    (tmp_path / "tripod").write_text("a file, not a folder")
    matched, unmatched, ambiguous = class_folders(tmp_path, labels)
    assert {folder.name: line for folder, line in matched} == {
        "tabby": 1,
        "Egyptian Cat": 4,
        "tench, Tinca tinca": 0,
        "maillot": 5,
    }
    assert unmatched == ["unicorn"]
    assert ambiguous == {"crane": [2, 3]}


def test_sign_test_is_the_binomial_tail():
    stats = pytest.importorskip("scipy.stats", reason="scipy gives the reference binomial tail")
    for higher, lower in [(7, 0), (6, 0), (52, 8), (10, 10), (3, 9), (0, 0), (44, 16)]:
        expected = stats.binomtest(higher, higher + lower, 0.5, alternative="greater").pvalue if higher + lower else 1
        assert sign_test_p(higher, lower) == pytest.approx(expected, rel=1e-9)


def _outcome(right: list[bool], probability: list[float], *, own: bool = False) -> Outcome:
    pre = PreprocessSpec(CROP)
    return Outcome(Variant("RGB", "0..1", "x", pre, own=own), np.array(right), np.array(probability, np.float64))


@pytest.mark.parametrize(
    ("photos", "own_right", "other_right", "higher", "warns"),
    [
        (6, 0, 6, 6, False),  # all six better: p = 1/64, a handful never warns
        (7, 0, 7, 7, True),  # seven: p = 1/128
        (40, 20, 22, 40, False),  # only 2 more right
        (40, 20, 24, 25, False),  # 4 more right (10 points), but the sign test gives p = 0.077
        (40, 20, 24, 29, True),  # ... and p = 0.0032
        (1000, 700, 740, 1000, False),  # 40 more right, p ~ 0, but 4 points: not a mistake in the spec
        (1000, 700, 750, 600, True),  # 5 points
    ],
)
def test_clearly_better_needs_more_right_a_margin_and_a_sign_test(photos, own_right, other_right, higher, warns):
    own = _outcome([i < own_right for i in range(photos)], [0.5] * photos, own=True)
    other = _outcome([i < other_right for i in range(photos)], [0.6] * higher + [0.4] * (photos - higher))
    finding = compare(own, other)
    assert (finding is not None) == warns
    if finding is not None:
        assert (finding.higher, finding.lower) == (higher, photos - higher)


def test_the_fewest_photos_the_rule_can_judge_is_where_all_of_them_better_passes():
    n = verify.MIN_PHOTOS
    assert n == 7
    for photos, warns in ((n - 1, False), (n, True)):
        own = _outcome([False] * photos, [0.5] * photos, own=True)
        assert (compare(own, _outcome([True] * photos, [0.6] * photos)) is not None) == warns


def _names(found: list[Variant]) -> set[tuple[str, str, str]]:
    return {(v.colour, v.scaling, v.resize) for v in found}


def test_variants_cross_colour_with_scaling_and_try_the_other_resize_rules():
    pre = PreprocessSpec(CROP, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    found = variants(pre)
    assert found[0].own and found[0].pre == pre and [v.own for v in found].count(True) == 1
    crop, stretch, letterbox = "shorter-crop 256->224x224", "stretch 224x224", "letterbox 224x224"
    grid = {(c, s, crop) for c in ("RGB", "BGR") for s in ("0..1", "-1..1", "0..255", "ImageNet")}
    assert _names(found) == grid | {("RGB", "ImageNet", stretch), ("RGB", "ImageNet", letterbox)}
    bgr = next(v for v in found if (v.colour, v.scaling) == ("BGR", "ImageNet"))
    assert bgr.pre.mean == IMAGENET_MEAN[::-1] and bgr.pre.std == IMAGENET_STD[::-1]  # in the order of the channels
    box = next(v for v in found if v.resize == letterbox)
    assert box.pre.rule.pad == geometry.CENTER and box.pre.fill == "mean" and box.pre.mean == IMAGENET_MEAN
    assert (
        verify.change_text(pre, bgr.pre)
        == 'channels = "BGR"; mean = [0.406, 0.456, 0.485], std = [0.225, 0.224, 0.229]'
    )


def test_a_stretch_spec_of_its_own_scaling_gets_a_crop_of_imagenets_ratio():
    pre = PreprocessSpec(geometry.ResizeRule(geometry.STRETCH, (192, 192)), mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    found = variants(pre)
    assert found[0].scaling == "own"
    assert {v.scaling for v in found} == {"own", "0..1", "-1..1", "0..255", "ImageNet"}
    crop = next(v for v in found if v.pre.rule.mode == geometry.SHORTER_CROP)
    assert crop.pre.rule.shorter == 219 and crop.pre.mean == pre.mean  # 192 / 0.875
    assert verify.change_text(pre, crop.pre) == 'resize = "shorter-crop"; shorter = 219'


def test_a_uint8_model_gets_no_scaling_alternatives():
    found = variants(PreprocessSpec(CROP, dtype="uint8", fill=0.0))
    assert {v.scaling for v in found} == {verify.RAW_SCALING}
    assert len(found) == 4  # RGB, BGR; and two other resize rules


# -- refusals before any model runs -----------------------------------------------------------------------
def _spec(tmp_path: Path, text: str) -> Path:
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    path = tmp_path / "spec.toml"
    path.write_text(f'name = "x"\nmodel = "missing.onnx"\nlabels = "labels.txt"\n{text}')
    return path


def test_detection_and_segmentation_are_refused(tmp_path):
    spec = _spec(
        tmp_path,
        'task = "detection"\n[preprocess]\nresize = "keep-aspect"\nmin_size = 800\nmax_size = 1333\n'
        '[postprocess]\nformat = "torchvision"\n',
    )
    with pytest.raises(VerifyError, match="checks classifiers.*task is detection"):
        verify_spec(spec, tmp_path, limit=5)


def test_no_directory_and_no_matching_folder_are_errors_that_say_what_was_expected(tmp_path):
    spec = _spec(tmp_path, 'task = "classification"\n[preprocess]\nresize = "stretch"\nsize = [8, 8]\n')
    with pytest.raises(VerifyError, match="no such directory"):
        verify_spec(spec, tmp_path / "photos", limit=5)
    (tmp_path / "photos" / "cats").mkdir(parents=True)
    with pytest.raises(VerifyError, match=r"no folder names a label of labels.txt \(folders: cats; labels look like"):
        verify_spec(spec, tmp_path / "photos", limit=5)


def test_a_stand_in_model_file_is_refused(tmp_path):
    from triton_vision_models.provenance import ModelSource

    version = tmp_path / "repo" / "net" / "1"
    version.mkdir(parents=True)
    (version / "model.onnx").write_bytes(b"not read")
    ModelSource(kind="stand-in", origin="random weights, seed 0", sha256="0" * 64).write(version)
    (version.parent / "labels.txt").write_text("cat\ndog\n")
    spec = tmp_path / "repo" / "pets" / "spec.toml"
    spec.parent.mkdir()
    spec.write_text(
        'name = "pets"\ntask = "classification"\nlabels = "../net/labels.txt"\nmodel_name = "net"\n'
        '[preprocess]\nresize = "stretch"\nsize = [8, 8]\n'
        '[tensors]\ninputs = [{ name = "x", dtype = "float32", dims = [3, 8, 8] }]\n'
        'outputs = [{ name = "y", dtype = "float32", dims = [2] }]\n'
    )
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    with pytest.raises(VerifyError, match="is a STAND-IN with random weights.*nothing to verify"):
        verify_spec(spec, tmp_path / "photos", limit=5)


# -- the real classifiers on real photos ------------------------------------------------------------------
@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return write_photos(tmp_path_factory.mktemp("verify_photos"))


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("verify_specs")


def _report(spec: Path, photos: Path) -> verify.Report:
    return verify_spec(spec, photos, limit=50, progress=None)


@pytest.fixture(scope="module")
def v1_report(specs, photos) -> verify.Report:
    return _report(v1_spec(specs, "v1"), photos)


@pytest.mark.parametrize("model", ["mobilenetv2", "mobilenet_v1"])
def test_a_correct_spec_gets_no_warning(model, specs, photos, request):
    report = request.getfixturevalue("v1_report") if model == "mobilenet_v1" else _report(v2_spec(specs, "v2"), photos)
    lines = report_lines(report)
    assert report.photos == 48 and report.classes == {"espresso": 8, "kuvasz": 8, "moped": 8, "tabby": 16, "tripod": 8}
    assert report.warnings == [] and not any(line.startswith("WARNING") for line in lines)
    assert lines[-1] == "ok: no alternative is clearly better than the spec's preprocessing"
    assert report.own.accuracy > 0.5  # real classifiers on photos they mostly get right


def test_too_few_photos_for_the_rule_say_it_cannot_judge_not_ok(specs, photos):
    few = verify_spec(v1_spec(specs, "v1_few"), photos, limit=1, progress=None)
    assert few.photos == 5 and few.warnings == []
    assert report_lines(few)[-1] == (
        "cannot judge: 5 photos are too few for the rule to call any alternative clearly better (it needs at "
        "least 7, each favouring it); give more photos per class (--verify-limit) or more classes"
    )
    enough = verify_spec(v1_spec(specs, "v1_enough"), photos, limit=2, progress=None)
    assert enough.photos == 10 and report_lines(enough)[-1].startswith("ok: ")


def test_channels_bgr_is_caught_and_rgb_named(specs, photos):
    bgr = V2_PREPROCESS + 'channels = "BGR"\n'
    report = _report(v2_spec(specs, "v2_bgr", bgr), photos)
    assert report.warnings, report_lines(report)
    best = report.warnings[0]
    assert (best.better.variant.colour, best.better.variant.scaling) == ("RGB", "ImageNet")
    assert best.better.variant.pre.rule == report.own.variant.pre.rule
    assert best.change == 'channels = "RGB"'
    warning = [line for line in report_lines(report) if line.startswith("WARNING")]
    assert len(warning) == 1 and 'for it write: channels = "RGB"' in warning[0]


def test_a_wrong_scaling_is_caught_and_the_right_one_named(specs, photos):
    wrong = V1_PREPROCESS.replace("mean = [0.5, 0.5, 0.5]", "mean = [0, 0, 0]").replace(
        "std = [0.5, 0.5, 0.5]", "std = [1, 1, 1]"
    )
    report = _report(v1_spec(specs, "v1_unit_scale", wrong), photos)
    assert report.own.variant.scaling == "0..1"
    best = report.warnings[0]
    assert (best.better.variant.colour, best.better.variant.scaling, best.better.variant.resize) == (
        "RGB",
        "-1..1",
        "stretch 224x224",
    )
    assert best.change == "mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5]"
    assert best.better.correct - best.own.correct >= verify.MIN_MORE_RIGHT


def _reference(photos: Path, channels: str, mean: float, std: float) -> tuple[int, int, float]:
    """MobileNet v1 by hand: OpenCV decode, Pillow's bilinear resize to 224x224 (a stretch follows Pillow),
    (x/255 - mean)/std, NHWC, the ONNX file as it is: (right, photos, mean probability of the true class)."""
    import cv2
    import onnxruntime as ort
    from PIL import Image

    session = ort.InferenceSession(str(shared_path(MOBILENET_V1)), providers=["CPUExecutionProvider"])
    labels = [line.split(",")[0] for line in shared_path(LABELS_1001).read_text(encoding="utf-8").splitlines()]
    right, probabilities = 0, []
    for folder in sorted(photos.iterdir()):
        truth = labels.index(folder.name)
        for path in sorted(folder.glob("*.jpg")):
            image = cv2.imread(str(path))
            if channels == "RGB":
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            image = np.asarray(Image.fromarray(image).resize((224, 224), Image.Resampling.BILINEAR))
            x = ((image.astype(np.float32) / 255 - mean) / std)[None]
            (p,) = session.run(None, {"input": x})
            right += int(np.argmax(p[0]) == truth)
            probabilities.append(float(p[0, truth]))
    return right, len(probabilities), float(np.mean(probabilities))


@pytest.mark.parametrize(("channels", "scaling", "mean", "std"), [("RGB", "-1..1", 0.5, 0.5), ("BGR", "0..1", 0, 1)])
def test_the_table_equals_a_computation_made_here(channels, scaling, mean, std, v1_report, photos):
    right, total, probability = _reference(photos, channels, mean, std)
    row = next(
        line
        for line in report_lines(v1_report)
        if line[2:].split()[:3] == [channels, scaling, "stretch"] and "%" in line
    )
    fields = row[2:].split()
    assert fields[4] == f"{right}/{total}"
    assert fields[5] == f"{right / total * 100:.1f}%"
    assert abs(float(fields[6]) - probability) <= 0.0005 + 1e-6
    assert row.startswith("*") == (channels == "RGB")  # the spec's own is marked


def test_unreadable_photos_are_counted_the_limit_bounds_each_class_and_odd_folders_are_named(tmp_path, photos):
    import shutil

    dataset = tmp_path / "photos"
    (dataset / "tabby").mkdir(parents=True)
    (dataset / "crane").mkdir()  # two lines of the labels: which one?
    (dataset / "unicorn").mkdir()
    kitten = sorted((photos / "tabby").glob("kitten-*.jpg"))
    for path in kitten[:3]:
        shutil.copy(path, dataset / "tabby" / path.name)
    (dataset / "tabby" / "a-truncated.jpg").write_bytes(kitten[0].read_bytes()[:200])
    (dataset / "tabby" / "notes.txt").write_text("not a photo")
    shutil.copytree(photos / "kuvasz", dataset / "kuvasz")
    messages: list[str] = []
    report = verify_spec(v1_spec(tmp_path, "v1"), dataset, limit=3, progress=messages.append)
    assert report.classes == {"kuvasz": 3, "tabby": 2}  # 3 of 8; 3 of 4 photos, one unreadable
    assert report.left_over == 5 + 1
    assert [(p.name, why) for p, why in report.unreadable] == [("a-truncated.jpg", "OpenCV cannot decode the image")]
    assert report.unmatched == ["unicorn"] and list(report.ambiguous) == ["crane"]
    text = "\n".join(report_lines(report))
    assert "1 photos could not be read (skipped): tabby/a-truncated.jpg (OpenCV cannot decode the image)" in text
    assert "folders naming no label of imagenet_1001_with_background.txt (skipped): unicorn" in text
    assert "folder 'crane' could be any of line 136, line 519" in text
    assert "6 more photos not used (--verify-limit 3)" in text
    assert messages[-1] == "verify: 6/6 photos, 10 variants each"
