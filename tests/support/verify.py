"""Labelled photos and ensemble specs for the ``add-model --verify`` tests (the real classifiers of ../shared).

The photos are real: ../shared's kitten (a tabby) and dog (a kuvasz), scikit-image's chelsea (a tabby),
coffee (an espresso), camera (a man at a tripod) and the left motorcycle of its stereo pair (a moped).
Each is scaled to at most :data:`LONGEST` pixels and seen as 8 views (whole, the top-left and
bottom-right 85% crops, the 70% centre crop, and their mirror images): 48 photos of 5 ImageNet
classes, enough for the rule of "clearly better" to speak (a handful of photos never warns, by design).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import shared_path

LONGEST = 400
MOBILENET_V2 = "models/mobilenetv2-12-int8.onnx"
MOBILENET_V1 = "models/mobilenet_v1_0.25_224.onnx"
SYNSET_WORDS = "labels/imagenet_synset_words.txt"
LABELS_1001 = "labels/imagenet_1001_with_background.txt"

# [preprocess] of each model as its README states it (../shared/README.md).
V2_PREPROCESS = """resize = "shorter-crop"
shorter = 256
size = [224, 224]
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
"""
V1_PREPROCESS = """resize = "stretch"
size = [224, 224]
layout = "NHWC"
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
"""


def _rgb(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def sources() -> dict[str, list[tuple[str, np.ndarray]]]:
    """{ImageNet class (a label's part before its first comma): [(name, RGB photo)]}."""
    from skimage import data

    return {
        "tabby": [("kitten", _rgb(shared_path("images/kitten.jpg"))), ("chelsea", data.chelsea())],
        "kuvasz": [("dog", _rgb(shared_path("images/dog.jpg")))],
        "espresso": [("coffee", data.coffee())],
        "tripod": [("camera", np.stack([data.camera()] * 3, axis=-1))],
        "moped": [("motorcycle", data.stereo_motorcycle()[0])],
    }


def views(rgb: np.ndarray) -> dict[str, np.ndarray]:
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, LONGEST / max(height, width))
    if scale < 1:
        rgb = cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    height, width = rgb.shape[:2]
    found = {"whole": rgb}
    ch, cw = int(height * 0.85), int(width * 0.85)
    corners = {"top-left": (0, 0), "bottom-right": (height - ch, width - cw)}
    for name, (y, x) in corners.items():
        found[name] = rgb[y : y + ch, x : x + cw]
    ch, cw = int(height * 0.7), int(width * 0.7)
    y, x = (height - ch) // 2, (width - cw) // 2
    found["centre"] = rgb[y : y + ch, x : x + cw]
    found.update({f"{name}-mirrored": view[:, ::-1] for name, view in list(found.items())})
    return found


def write_photos(target: Path) -> Path:
    """``target``/CLASS/NAME-VIEW.jpg for every source and view (JPEG quality 92)."""
    import cv2

    for label, items in sources().items():
        folder = target / label
        folder.mkdir(parents=True, exist_ok=True)
        for name, rgb in items:
            for view, pixels in views(rgb).items():
                bgr = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2BGR)
                cv2.imwrite(str(folder / f"{name}-{view}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return target


def synset_names(target: Path) -> Path:
    """The synset-words label file without its wnids (``tabby, tabby cat``), as a model's label file."""
    lines = shared_path(SYNSET_WORDS).read_text(encoding="utf-8").splitlines()
    target.write_text("".join(line.split(" ", 1)[1] + "\n" for line in lines), encoding="utf-8")
    return target


def write_spec(path: Path, model: str, labels: Path, preprocess: str, *, probabilities: bool = False) -> Path:
    """A classification spec for a ../shared model; ``preprocess`` is the [preprocess] table's body."""
    postprocess = '\n[postprocess]\noutput = "probabilities"\n' if probabilities else ""
    path.write_text(
        f'name = "{path.stem}"\ntask = "classification"\nmodel = "{shared_path(model)}"\nlabels = "{labels}"\n\n'
        f"[preprocess]\n{preprocess}{postprocess}",
        encoding="utf-8",
    )
    return path


def v2_spec(directory: Path, name: str, preprocess: str = V2_PREPROCESS) -> Path:
    labels = directory / "imagenet_names.txt"
    if not labels.exists():
        synset_names(labels)
    return write_spec(directory / f"{name}.toml", MOBILENET_V2, labels, preprocess)


def v1_spec(directory: Path, name: str, preprocess: str = V1_PREPROCESS) -> Path:
    return write_spec(
        directory / f"{name}.toml", MOBILENET_V1, shared_path(LABELS_1001), preprocess, probabilities=True
    )
