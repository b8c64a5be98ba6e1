"""``[preprocess] resize_like``: the generated pipeline, run on the CPU by the project's DALI backend,
against the reference library's own pipeline written here, on real photos: torchvision's Resize +
CenterCrop and a stretch with Pillow's ``Image.resize(BILINEAR)``, Ultralytics' and YOLOX's letterboxes
with ``cv2.resize(INTER_LINEAR)``. Target: at least 99.9% of the network input's values equal (one
level is 1/255 of the range; the comparison allows a hundredth of it for float rounding)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED
from tests.support import reference
from tests.support.images import encode
from tests.unit.authoring.test_generated_dali import in_pixel_units, preprocess_runner, run
from triton_vision_authoring.add_model.ensemble_spec import PreprocessSpec, SpecError, load_spec
from triton_vision_models import tensors as t

AGREEMENT = 0.999
LEVEL = 0.01  # pixel units: values closer than this are the same 8-bit level


def photos() -> dict[str, bytes]:
    from skimage import data

    found = {p.name: p.read_bytes() for p in sorted((SHARED / "images").glob("*.jpg"))}
    for name in ("chelsea", "astronaut", "coffee", "rocket"):
        found[f"{name}.jpg"] = encode(Image.fromarray(getattr(data, name)()), "JPEG", quality=92)
    found["camera.png"] = encode(Image.fromarray(data.camera()), "PNG")  # grey: decoded to three equal channels
    return found


PHOTOS = photos()


def rgb_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def torchvision_crop(data: bytes) -> np.ndarray:
    return reference.shorter_crop_rgb(data, 256, 224)


def pillow_stretch(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((80, 48), Image.Resampling.BILINEAR))


def ultralytics_letterbox(data: bytes) -> np.ndarray:
    """Ultralytics' LetterBox (auto off, centred): ``round(side * r)``, cv2 INTER_LINEAR, padding split
    ``round(d - 0.1)`` / ``round(d + 0.1)``, grey 114."""
    rgb = rgb_of(data)
    h0, w0 = rgb.shape[:2]
    r = min(320 / h0, 320 / w0)
    new_w, new_h = int(round(w0 * r)), int(round(h0 * r))
    if (new_w, new_h) != (w0, h0):
        rgb = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dw, dh = (320 - new_w) / 2, (320 - new_h) / 2
    top, bottom, left, right = (int(round(v)) for v in (dh - 0.1, dh + 0.1, dw - 0.1, dw + 0.1))
    return cv2.copyMakeBorder(rgb, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))


def top_left_letterbox(data: bytes) -> np.ndarray:
    """A top-left letterbox on 114, resized with cv2 INTER_LINEAR (YOLOX's preproc with the side rounded)."""
    rgb = rgb_of(data)
    h0, w0 = rgb.shape[:2]
    r = min(160 / h0, 256 / w0)
    new_w, new_h = int(np.floor(w0 * r + 0.5)), int(np.floor(h0 * r + 0.5))
    canvas = np.full((160, 256, 3), 114, np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return canvas


CASES: dict[str, tuple[dict[str, Any], Callable[[bytes], np.ndarray]]] = {
    "shorter-crop, pillow by default": (
        {"resize": "shorter-crop", "size": [224, 224], "shorter": 256, "mean": [0.485, 0.456, 0.406]}
        | {"std": [0.229, 0.224, 0.225]},
        torchvision_crop,
    ),
    "stretch, pillow by default": ({"resize": "stretch", "size": [48, 80], "layout": "NHWC"}, pillow_stretch),
    "letterbox, opencv by default": (
        {"resize": "letterbox", "size": [320, 320], "pad": "center", "fill": 114},
        ultralytics_letterbox,
    ),
    "letterbox top-left, uint8": (
        {"resize": "letterbox", "size": [160, 256], "pad": "top-left", "fill": 114, "dtype": "uint8"}
        | {"channels": "BGR", "resize_like": "opencv"},
        top_left_letterbox,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_cpu_path_resizes_as_the_library_does(tmp_path: Path, case):
    preprocess, library = CASES[case]
    runner, pre = preprocess_runner(tmp_path, preprocess)
    assert isinstance(pre, PreprocessSpec)
    agreement = {}
    for name, data in PHOTOS.items():
        (pixels,) = run(runner, [data])[t.PIXELS]
        got = in_pixel_units(pixels, pre)
        want = library(data).astype(np.float32)
        if pre.channels == "BGR":
            want = want[..., ::-1]
        assert got.shape == want.shape, name
        agreement[name] = float(np.mean(np.abs(got - want) < LEVEL))
    assert min(agreement.values()) >= AGREEMENT, agreement


def spec_text(preprocess: str) -> str:
    return f'name = "x"\ntask = "classification"\nmodel = "x.onnx"\nlabels = "x.txt"\n[preprocess]\n{preprocess}\n'


@pytest.mark.parametrize(
    ("preprocess", "message"),
    [
        (
            'resize = "stretch"\nsize = [8, 8]\nantialias = false',
            "x.toml: [preprocess] 'antialias' = false contradicts resize_like = \"pillow\": its resize always "
            'filters when shrinking; leave antialias out, or resize_like = "dali" for DALI\'s resize',
        ),
        (
            'resize = "letterbox"\nsize = [8, 8]\nantialias = true',
            "x.toml: [preprocess] 'antialias' = true contradicts resize_like = \"opencv\": its resize never "
            "filters (INTER_LINEAR)",
        ),
        (
            'resize = "keep-aspect"\nmin_size = 8\nmax_size = 16\nresize_like = "opencv"',
            "x.toml: [preprocess] 'resize_like': resize 'keep-aspect' resizes float pixels",
        ),
        (
            'resize = "stretch"\nsize = [8, 8]\nresize_like = "torch"',
            "'resize_like' must be one of pillow, opencv, dali",
        ),
    ],
)
def test_a_resize_like_the_rule_cannot_follow_is_refused(tmp_path: Path, preprocess, message):
    path = tmp_path / "x.toml"
    path.write_text(spec_text(preprocess))
    with pytest.raises(SpecError) as refused:
        load_spec(path)
    assert message in str(refused.value)


def test_each_rule_follows_the_library_it_comes_from(tmp_path: Path):
    found = {}
    for rule, extra in (("shorter-crop", "shorter = 8"), ("stretch", ""), ("letterbox", "")):
        path = tmp_path / f"{rule}.toml"
        path.write_text(spec_text(f'resize = "{rule}"\nsize = [8, 8]\n{extra}'))
        pre = load_spec(path).preprocess
        found[rule] = (pre.resize_like, pre.antialias)
    path = tmp_path / "dali.toml"
    path.write_text(spec_text('resize = "letterbox"\nsize = [8, 8]\nresize_like = "dali"\nantialias = false'))
    found["dali"] = (load_spec(path).preprocess.resize_like, load_spec(path).preprocess.antialias)
    assert found == {
        "shorter-crop": ("pillow", True),
        "stretch": ("pillow", True),
        "letterbox": ("opencv", False),
        "dali": ("dali", False),
    }
