"""``add-model SPEC --verify DIR``: the spec's preprocessing against its common alternatives, on
photos whose class is known.

A wrong colour order or a wrong scaling does not make a classifier fail; it makes it worse, and
nothing else notices. Here the model runs in-process (ONNX Runtime, CPU; the file as
:func:`.onnx_model.prepare_model` adapts it for serving) on the photos of ``DIR`` (one folder per
class; a folder is named by a line of the label file, or by the part of a line before its first
comma, case ignored), under the spec's preprocessing (:mod:`.preprocess`, what the server's DALI
pipeline does) and under its usual alternatives:

- colour order RGB | BGR, crossed with the scalings 0..1 (mean 0, std 1), -1..1 (mean 0.5, std 0.5),
  0..255 (mean 0, std 1/255), ImageNet mean/std (reversed for BGR) and the spec's own, at the spec's
  resize rule (a ``dtype = "uint8"`` model takes raw pixels: no scaling alternatives);
- the other resize rules (shorter-crop with shorter = size / 0.875, ImageNet's 256 for 224; stretch;
  letterbox, centred, mean fill) at the spec's colour order and scaling.

Each variant's top-1 accuracy and mean probability of the true class go into a table.

"Clearly better". An alternative is clearly better than the spec's own preprocessing when all of
these hold (:func:`compare`):

1. it gets at least :data:`MIN_MORE_RIGHT` more photos right, net (on ten photos nothing less means
   anything);
2. its top-1 accuracy is at least :data:`MIN_MARGIN` higher (on thousands of photos a few more right
   is no mistake in the spec);
3. it is not the luck of the draw: the alternative gives the true class a higher probability on more
   photos than chance allows, by the exact sign test (one-sided, ties dropped) at
   :data:`MAX_P_VALUE`. Top-1 changes only on the few photos near a decision boundary, while the
   probability of the true class moves on every photo, so on a small set this test sees what counting
   right answers cannot; 1% per alternative keeps false alarms on a correct spec rare with ~10 compared.

So at least 7 photos are needed (:data:`MIN_PHOTOS`), all of them favouring the alternative
(p = 1/128), and a handful of photos never warns: with fewer the report says it cannot judge, not
"ok". Detection and segmentation are refused: without boxes or masks there is no accuracy, and a
detector's confidence is no measure of right preprocessing (a wrong scaling can make it more
confident, not less).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import triton_vision_contract as contract
from triton_vision_authoring.add_model.ensemble_spec import EnsembleSpec, load_spec
from triton_vision_authoring.add_model.onnx_model import load_onnx, prepare_model
from triton_vision_models import geometry
from triton_vision_models import tensors as t
from triton_vision_models.classification import LOGITS_OUTPUT, softmax
from triton_vision_models.errors import ConfigError, ImageRejectedError
from triton_vision_models.labels import load_labels
from triton_vision_models.preprocessing import PreprocessSpec, decode, network_input_of, with_changes
from triton_vision_models.provenance import ModelSource

# The rule for "clearly better" (see the module docstring).
MIN_MORE_RIGHT = 3
MIN_MARGIN = 0.05
MAX_P_VALUE = 0.01
RULE = (
    f"clearly better = at least {MIN_MORE_RIGHT} more photos right (net), at least {MIN_MARGIN * 100:g} points "
    f"more top-1, and the true class more probable on more photos than chance allows (exact sign test, "
    f"one-sided p <= {MAX_P_VALUE:g})"
)
TIE = 1e-6  # probabilities of the true class closer than this count as equal (the sign test drops them)
CROP_RATIO = t.CLASSIFIER_INPUT_SIZE / t.CLASSIFIER_RESIZE_SHORTER  # ImageNet: a 224 crop of a shorter side of 256
BATCH = 8  # photos per model run (or 1 where the model cannot batch)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
PROGRESS_EVERY_S = 2.0
SHOWN = 5  # names listed per problem (unmatched folders, unreadable files)
COLOURS = ("RGB", "BGR")


class VerifyError(ConfigError):
    """``--verify`` cannot run: no such folder, no folder naming a label, not a classifier, ..."""


@dataclass(frozen=True)
class Scaling:
    name: str
    mean: tuple[float, float, float]  # in RGB order
    std: tuple[float, float, float]

    def for_channels(self, channels: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(mean, std) in the order of ``channels`` (a spec writes them so)."""
        if channels == "BGR":
            return _reversed(self.mean), _reversed(self.std)
        return self.mean, self.std


SCALINGS = (
    Scaling("0..1", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    Scaling("-1..1", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    Scaling("0..255", (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255)),
    Scaling("ImageNet", t.IMAGENET_MEAN, t.IMAGENET_STD),
)
OWN_SCALING = "own"
RAW_SCALING = "raw (uint8)"


def _reversed(values: tuple[float, float, float]) -> tuple[float, float, float]:
    return values[2], values[1], values[0]


@dataclass(frozen=True)
class Variant:
    colour: str
    scaling: str
    resize: str
    pre: PreprocessSpec
    own: bool = False


@dataclass
class Outcome:
    """One variant on every photo."""

    variant: Variant
    right: np.ndarray  # bool [photos]: top-1 is the true class
    true_probability: np.ndarray  # float [photos]

    @property
    def correct(self) -> int:
        return int(self.right.sum())

    @property
    def accuracy(self) -> float:
        return float(self.right.mean()) if self.right.size else 0.0

    @property
    def mean_probability(self) -> float:
        return float(self.true_probability.mean()) if self.true_probability.size else 0.0


@dataclass(frozen=True)
class Finding:
    """An alternative clearly better than the spec's own preprocessing."""

    better: Outcome
    own: Outcome
    higher: int  # photos where the alternative gives the true class a higher probability
    lower: int  # ... a lower one
    p_value: float  # the sign test's
    change: str  # what to write in the spec's [preprocess] for it


@dataclass
class Report:
    spec: EnsembleSpec
    photos_dir: Path
    limit: int
    classes: dict[str, int]  # folder -> photos used
    left_over: int  # readable-by-name photos beyond the limit, not used
    unmatched: list[str]  # folders naming no label
    ambiguous: dict[str, list[int]]  # folder -> the label lines it could mean
    unreadable: list[tuple[Path, str]]
    outcomes: list[Outcome]
    warnings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def photos(self) -> int:
        return sum(self.classes.values())

    @property
    def own(self) -> Outcome:
        return next(o for o in self.outcomes if o.variant.own)


# -- which folder is which class ---------------------------------------------------------------------
def label_names(labels: Sequence[str]) -> dict[str, list[int]]:
    """Lower-cased names -> label lines: each whole line, and its part before the first comma."""
    names: dict[str, list[int]] = {}
    for index, line in enumerate(labels):
        for name in dict.fromkeys((line.strip().lower(), line.split(",")[0].strip().lower())):
            names.setdefault(name, []).append(index)
    return names


def class_folders(
    photos_dir: Path, labels: Sequence[str]
) -> tuple[list[tuple[Path, int]], list[str], dict[str, list[int]]]:
    """(folder, label line) pairs, the folders naming no label, and those naming several."""
    if not photos_dir.is_dir():
        raise VerifyError(f"--verify {photos_dir}: no such directory (it holds one folder of photos per class)")
    names = label_names(labels)
    matched, unmatched, ambiguous = [], [], {}
    for folder in sorted(p for p in photos_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        lines = names.get(folder.name.strip().lower(), [])
        if len(set(lines)) == 1:
            matched.append((folder, lines[0]))
        elif lines:
            ambiguous[folder.name] = sorted(set(lines))
        else:
            unmatched.append(folder.name)
    return matched, unmatched, ambiguous


def _photos(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in PHOTO_SUFFIXES
    )


# -- the variants -------------------------------------------------------------------------------------
def _scaling_name(pre: PreprocessSpec) -> str:
    if pre.dtype == "uint8":
        return RAW_SCALING
    for scaling in SCALINGS:
        mean, std = scaling.for_channels(pre.channels)
        if np.allclose(mean, pre.mean, atol=1e-4) and np.allclose(std, pre.std, rtol=1e-3, atol=1e-6):
            return scaling.name
    return OWN_SCALING


def describe_rule(rule: geometry.ResizeRule) -> str:
    height, width = rule.network
    if rule.mode == geometry.SHORTER_CROP:
        return f"shorter-crop {rule.shorter}->{height}x{width}"
    return f"{rule.mode} {height}x{width}"


def _other_rules(rule: geometry.ResizeRule) -> list[geometry.ResizeRule]:
    """The resize rules a classifier may want other than the spec's, at the same size (letterbox
    centred; its fill is the spec's default, the mean, as a spec not letterboxing has)."""
    size = rule.network
    candidates = [
        geometry.ResizeRule(geometry.SHORTER_CROP, size, max(round(max(size) / CROP_RATIO), max(size))),
        geometry.ResizeRule(geometry.STRETCH, size),
        geometry.ResizeRule(geometry.LETTERBOX, size, pad=geometry.CENTER),
    ]
    return [r for r in candidates if r.mode != rule.mode]


def variants(pre: PreprocessSpec) -> list[Variant]:
    """The spec's own preprocessing and its alternatives (see the module docstring), own first."""
    own_scaling = _scaling_name(pre)
    found = [Variant(pre.channels, own_scaling, describe_rule(pre.rule), pre, own=True)]
    scalings: dict[str, Scaling | None] = {RAW_SCALING: None}  # uint8: raw pixels
    if pre.dtype == "float32":
        scalings = {s.name: s for s in SCALINGS}
        scalings.setdefault(own_scaling, None)  # the spec's own mean/std where none of the common ones
    for colour in COLOURS:
        for name, scaling in scalings.items():
            if (colour, name) == (pre.channels, own_scaling):
                continue
            changes: dict[str, object] = {"channels": colour}
            if scaling is not None:
                changes["mean"], changes["std"] = scaling.for_channels(colour)
            found.append(Variant(colour, name, describe_rule(pre.rule), with_changes(pre, **changes)))
    for rule in _other_rules(pre.rule):
        found.append(Variant(pre.channels, own_scaling, describe_rule(rule), with_changes(pre, rule=rule)))
    unique: dict[PreprocessSpec, Variant] = {}
    for variant in found:  # the spec's own mean/std may be a common one in the other colour order
        unique.setdefault(variant.pre, variant)
    return list(unique.values())


def change_text(own: PreprocessSpec, other: PreprocessSpec) -> str:
    """The [preprocess] keys that make ``own`` ``other``."""
    keys = []
    if other.channels != own.channels:
        keys.append(f'channels = "{other.channels}"')
    if not np.allclose(other.mean, own.mean) or not np.allclose(other.std, own.std):
        keys.append(f"mean = {numbers(other.mean)}, std = {numbers(other.std)}")
    if other.rule != own.rule:
        keys.append(f'resize = "{other.rule.mode}"')
        if other.rule.mode == geometry.SHORTER_CROP:
            keys.append(f"shorter = {other.rule.shorter}")
        if other.rule.mode == geometry.LETTERBOX:
            keys.append(f'pad = "{other.rule.pad}"')
    return "; ".join(keys)


# -- the comparison ------------------------------------------------------------------------------------
def sign_test_p(higher: int, lower: int) -> float:
    """One-sided exact sign test: P(at least ``higher`` heads in ``higher + lower`` fair coin flips)."""
    n = higher + lower
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(higher, n + 1)) / 2**n


def fewest_photos() -> int:
    """The fewest photos on which the rule can call an alternative clearly better: all of them
    favouring it, at least :data:`MIN_MORE_RIGHT` of them, and the sign test's p at most
    :data:`MAX_P_VALUE` (7: p = 1/128). With fewer, "no warning" says nothing."""
    photos = MIN_MORE_RIGHT
    while sign_test_p(photos, 0) > MAX_P_VALUE:
        photos += 1
    return photos


MIN_PHOTOS = fewest_photos()


def compare(own: Outcome, other: Outcome) -> Finding | None:
    """``other`` as a :class:`Finding` if it is clearly better than ``own`` (the module docstring's rule)."""
    difference = other.true_probability - own.true_probability
    higher, lower = int((difference > TIE).sum()), int((difference < -TIE).sum())
    p_value = sign_test_p(higher, lower)
    clearly = (
        other.correct - own.correct >= MIN_MORE_RIGHT
        and other.accuracy - own.accuracy >= MIN_MARGIN - 1e-9
        and p_value <= MAX_P_VALUE
    )
    if not clearly:
        return None
    return Finding(other, own, higher, lower, p_value, change_text(own.variant.pre, other.variant.pre))


# -- running the model --------------------------------------------------------------------------------
def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Model:
    """The spec's ONNX file as served, in ONNX Runtime on the CPU: network inputs in, P(class) out."""

    def __init__(self, spec: EnsembleSpec, labels: int) -> None:
        import onnxruntime as ort

        path = spec.model
        if path is None:  # a built-in spec: the file `models prepare` put into its model directory
            path = spec.source.parent.parent / spec.model_name / "1" / "model.onnx"
            if not path.is_file():
                raise VerifyError(
                    f"{spec.source.name} names no 'model' file and {path} does not exist "
                    "(run `triton-vision models prepare` first)"
                )
        source = ModelSource.read(path.parent)
        if source is not None and source.is_stand_in:
            raise VerifyError(
                f"{path} is a {source.describe()}: no preprocessing makes it right, so there is nothing to verify "
                f"(put the real file there: `triton-vision models prepare --model {spec.model_name} --force`)"
            )
        served, model = prepare_model(spec, load_onnx(path), labels)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(served.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.input = model.image_input
        self.output = model.roles["scores"]
        self.batch = max(1, min(BATCH, model.max_batch_size))
        self.logits = spec.postprocess.output == LOGITS_OUTPUT

    def probabilities(self, pixels: list[np.ndarray]) -> np.ndarray:
        rows = []
        for start in range(0, len(pixels), self.batch):
            (scores,) = self.session.run([self.output], {self.input: np.stack(pixels[start : start + self.batch])})
            rows.append(np.asarray(scores, np.float32).reshape(len(pixels[start : start + self.batch]), -1))
        scores = np.concatenate(rows)
        return softmax(scores) if self.logits else scores


def verify_spec(
    spec_path: Path,
    photos_dir: Path,
    *,
    limit: int,
    progress: Callable[[str], None] | None = _stderr,
) -> Report:
    """Run ``spec_path``'s model on ``photos_dir`` under every variant; :class:`VerifyError` if it cannot."""
    spec = load_spec(spec_path)
    if spec.task != contract.CLASSIFICATION or spec.labels is None:
        raise VerifyError(
            f"{spec_path.name}: --verify checks classifiers (photos of known class, top-1 accuracy); "
            f"this spec's task is {spec.task}, whose accuracy would need boxes or masks, and whose "
            "confidence does not tell right preprocessing from wrong"
        )
    if limit < 1:
        raise VerifyError(f"--verify-limit must be at least 1, got {limit}")
    labels = load_labels(spec.labels)
    folders, unmatched, ambiguous = class_folders(photos_dir, labels)
    if not folders:
        shown = ", ".join([*unmatched, *ambiguous][:SHOWN]) or "none"
        raise VerifyError(
            f"--verify {photos_dir}: no folder names a label of {spec.label_name} "
            f"(folders: {shown}; labels look like {labels[0]!r}, {labels[min(1, len(labels) - 1)]!r})"
        )
    chosen, left_over = _choose(folders, limit)
    model = _Model(spec, len(labels))
    found = variants(spec.preprocess)
    run = _run(model, found, chosen, progress)
    if not run.truth:
        raise VerifyError(f"--verify {photos_dir}: none of the {len(chosen)} photos could be read")
    truth = np.array(run.truth)
    outcomes = []
    for variant, parts in zip(found, run.probabilities, strict=True):
        p = np.concatenate(parts)
        outcomes.append(Outcome(variant, p.argmax(axis=1) == truth, p[np.arange(truth.size), truth]))
    report = Report(spec, photos_dir, limit, run.classes, left_over, unmatched, ambiguous, run.unreadable, outcomes)
    findings = [f for f in (compare(report.own, o) for o in outcomes if not o.variant.own) if f is not None]
    report.warnings = sorted(findings, key=lambda f: (-f.better.correct, -f.better.mean_probability))
    if spec.preprocess.dtype == "uint8":
        report.notes.append("dtype uint8: the model takes raw pixels, so no scaling alternatives")
    return report


Photo = tuple[Path, str, int]  # file, its folder's name, its class (label line)


def _choose(folders: list[tuple[Path, int]], limit: int) -> tuple[list[Photo], int]:
    """The first ``limit`` photos of each folder (by name), and how many were left over."""
    chosen: list[Photo] = []
    left_over = 0
    for folder, label in folders:
        photos = _photos(folder)
        left_over += max(0, len(photos) - limit)
        chosen.extend((path, folder.name, label) for path in photos[:limit])
    return chosen, left_over


@dataclass
class _Run:
    classes: dict[str, int]  # folder -> photos read
    probabilities: list[list[np.ndarray]]  # per variant, [photos, classes] blocks
    truth: list[int] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def _run(model: _Model, found: list[Variant], chosen: list[Photo], progress: Callable[[str], None] | None) -> _Run:
    """Each photo decoded once, preprocessed by every variant, run in batches."""
    import cv2

    run = _Run({name: 0 for _, name, _ in chosen}, [[] for _ in found])
    pending: list[list[np.ndarray]] = [[] for _ in found]
    last = time.monotonic()
    for done, (path, folder, label) in enumerate(chosen, start=1):
        try:
            rgb = decode(path.read_bytes())
        except (OSError, ImageRejectedError, cv2.error) as exc:
            run.unreadable.append((path, str(exc) if isinstance(exc, ImageRejectedError) else type(exc).__name__))
            continue
        by_channels = {"RGB": rgb, "BGR": np.ascontiguousarray(rgb[..., ::-1])}
        for inputs, variant in zip(pending, found, strict=True):
            inputs.append(network_input_of(by_channels[variant.pre.channels], variant.pre).pixels)
        run.truth.append(label)
        run.classes[folder] += 1
        if len(pending[0]) >= model.batch:
            _flush(model, pending, run)
        if progress is not None and (time.monotonic() - last >= PROGRESS_EVERY_S or done == len(chosen)):
            progress(f"verify: {done}/{len(chosen)} photos, {len(found)} variants each")
            last = time.monotonic()
    _flush(model, pending, run)
    return run


def _flush(model: _Model, pending: list[list[np.ndarray]], run: _Run) -> None:
    if pending[0]:
        for inputs, out in zip(pending, run.probabilities, strict=True):
            out.append(model.probabilities(inputs))
            inputs.clear()


def numbers(values: Sequence[float]) -> str:
    """A spec's list of numbers as TOML writes it."""
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"
