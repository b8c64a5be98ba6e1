"""The dali.py that add-model generates, run in-process (DALI on the CPU), against the Pillow/NumPy
reference of each resize rule (tests/support/format_references.py): every rule, both layouts, both dtypes, both
colour orders, the padding's value, and the sizes the post-processing is told."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path
from tests.support import format_models as fs
from tests.support import format_references as ref
from tests.support.modelconfigs import config_for
from tests.support.runners import run_request
from triton_vision_authoring.add_model.add_model import generate
from triton_vision_authoring.add_model.configs import ModelFiles
from triton_vision_authoring.add_model.ensemble_spec import load_spec
from triton_vision_models import tensors as t
from triton_vision_models.dali_runner import DaliRunner

# Pixel units: DALI's and Pillow's antialiased bilinear resizes differ by rounding on some pixels (mean
# well below one level); a crop or padding one pixel off, a swapped channel or a transposed image gives
# mean errors of tens of levels on these block images.
MEAN_TOLERANCE = 0.5
P99_TOLERANCE = 2.0


def declared(layout: str, dtype: str, size) -> dict:
    height, width = size if size else (-1, -1)
    dims = [3, height, width] if layout == "NCHW" else [height, width, 3]
    return {"name": "pixels_in", "dtype": dtype, "dims": dims}


def preprocess_runner(directory: Path, preprocess: dict) -> tuple[DaliRunner, object]:
    """The generated NAME_preprocess of a spec with ``preprocess`` (tensors declared, no model file)."""
    layout = preprocess.get("layout", "NCHW")
    dtype = preprocess.get("dtype", "float32")
    keep_aspect = preprocess["resize"] == "keep-aspect"
    if keep_aspect:  # a detector: images of their own size
        task, post = "detection", {"format": "torchvision"}
        outputs = [
            {"name": "boxes", "dtype": "float32", "dims": [-1, 4]},
            {"name": "scores", "dtype": "float32", "dims": [-1]},
            {"name": "labels", "dtype": "int64", "dims": [-1]},
        ]
    else:
        task, post = "segmentation", {"format": "class-map"}
        outputs = [{"name": "classes", "dtype": "int64", "dims": preprocess["size"]}]
    tensors = {"max_batch_size": 4, "inputs": [declared(layout, dtype, preprocess.get("size"))], "outputs": outputs}
    labels = directory / "labels.txt"
    labels.write_text("a\nb\nc\n")
    spec_path = directory / "spec.toml"
    data = {"name": "pre", "task": task, "labels": "labels.txt", "preprocess": preprocess, "postprocess": post}
    spec_path.write_text(fs.toml_text({**data, "tensors": tensors}))
    spec = load_spec(spec_path)
    generated = generate(spec)
    files: ModelFiles = next(m for m in generated.models if m.name == spec.preprocess_name)
    model_dir = directory / "repo" / files.name
    for relative, text in files.files.items():
        (model_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (model_dir / relative).write_text(text)
    return DaliRunner.from_config(config_for(model_dir)), spec.preprocess


def run(runner: DaliRunner, images: list[bytes]) -> dict[str, np.ndarray]:
    longest = max(len(d) for d in images)
    rows = np.stack([np.frombuffer(d + b"\0" * (longest - len(d)), np.uint8) for d in images])
    return dict(run_request(runner, {t.IMAGE: rows}))


def in_pixel_units(output: np.ndarray, pre) -> np.ndarray:
    """[H, W, 3] float pixel values (0..255) in the spec's channel order, from one network input."""
    hwc = output.transpose(1, 2, 0) if pre.layout == "NCHW" else output
    if pre.dtype == "uint8":
        return hwc.astype(np.float32)
    return hwc * np.asarray(pre.std, np.float32) * 255 + np.asarray(pre.mean, np.float32) * 255


BLOCKS = [(fs.RED, (20, 15, 70, 60)), (fs.BLUE, (120, 80, 190, 140)), (fs.GREEN, (5, 100, 40, 148))]
LANDSCAPE = fs.encode(fs.blocks_image(151, 203, BLOCKS))
PORTRAIT = fs.encode(np.ascontiguousarray(fs.blocks_image(151, 203, BLOCKS).transpose(1, 0, 2)))
CASES = {
    "stretch-nhwc-mean-half": {
        "resize": "stretch",
        "size": [48, 80],
        "layout": "NHWC",
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
    },
    "stretch-uint8-nhwc": {"resize": "stretch", "size": [48, 80], "layout": "NHWC", "dtype": "uint8"},
    "letterbox-center-fill-114": {"resize": "letterbox", "size": [64, 96], "pad": "center", "fill": 114},
    "letterbox-top-left-uint8-nchw": {
        "resize": "letterbox",
        "size": [64, 64],
        "pad": "top-left",
        "fill": 7,
        "dtype": "uint8",
    },
    "letterbox-center-bgr-imagenet": {
        "resize": "letterbox",
        "size": [48, 64],
        "pad": "center",
        "fill": "mean",
        "channels": "BGR",
        "mean": [0.406, 0.456, 0.485],
        "std": [0.225, 0.224, 0.229],
    },
    "shorter-crop-nhwc": fs.FORMAT_SPECS["segnhwc"][3],
    "keep-aspect-float": {"resize": "keep-aspect", "min_size": 96, "max_size": 160, "antialias": False},
    # The ONNX model zoo's Faster R-CNN: BGR, its mean subtracted from 0..255 pixels, padded to multiples of 32.
    "keep-aspect-bgr-pixel-mean-divisible-32": {
        "resize": "keep-aspect",
        "min_size": 96,
        "max_size": 160,
        "size_divisible": 32,
        "channels": "BGR",
        "pixel_mean": [102.9801, 115.9465, 122.7717],
    },
    "keep-aspect-uint8": {
        "resize": "keep-aspect",
        "min_size": 96,
        "max_size": 160,
        "antialias": False,
        "dtype": "uint8",
    },
}


def reference(data: bytes, pre, raw: dict) -> tuple[np.ndarray, ref.RefPlacement]:
    rgb = ref.decode(data)
    placement = ref.ref_placement_of(raw, (int(rgb.shape[0]), int(rgb.shape[1])))
    fill = raw.get("fill", "mean")
    if fill == "mean":  # 0 after normalisation: the mean itself, in pixel units
        fill_rgb = np.asarray(pre.mean, np.float32) * 255
    else:
        fill_rgb = np.full(3, float(fill), np.float32)
    source = rgb[..., ::-1] if pre.channels == "BGR" else rgb
    canvas = ref.ref_network_rgb(np.ascontiguousarray(source), placement, 0.0, antialias=pre.antialias)
    (y0, y1), (x0, x1) = visible(placement)
    pad = np.ones(placement.network, bool)
    pad[y0:y1, x0:x1] = False
    canvas[pad] = fill_rgb
    return canvas, placement


def visible(p: ref.RefPlacement):
    return (max(0, p.offset[0]), min(p.network[0], p.offset[0] + p.resized[0])), (
        max(0, p.offset[1]),
        min(p.network[1], p.offset[1] + p.resized[1]),
    )


@pytest.mark.parametrize("name", CASES)
def test_generated_pipeline_equals_the_reference(tmp_path, name):
    raw = CASES[name]
    runner, pre = preprocess_runner(tmp_path, raw)
    images = [LANDSCAPE, PORTRAIT, shared_path("images/kitten.jpg").read_bytes()]
    out = run(runner, images)
    if raw["resize"] == "keep-aspect":  # the batch: padded to its largest image, sides multiples of size_divisible
        spatial = out[t.PIXELS].shape[2:] if pre.layout == "NCHW" else out[t.PIXELS].shape[1:3]
        largest = [max(reference(d, pre, raw)[1].network[axis] for d in images) for axis in (0, 1)]
        assert list(spatial) == largest, (spatial, largest)
    for index, data in enumerate(images):
        want, placement = reference(data, pre, raw)
        network = out[t.PIXELS][index]
        assert network.dtype == (np.uint8 if pre.dtype == "uint8" else np.float32)
        got = in_pixel_units(network, pre)
        if raw["resize"] == "keep-aspect":  # a batch is padded bottom/right with zeros to its largest image
            h, w = placement.network
            hwc = network.transpose(1, 2, 0) if pre.layout == "NCHW" else network
            assert not hwc[h:].any() and not hwc[:, w:].any(), "the batch padding is 0"
            got = got[:h, :w]
        assert got.shape == want.shape, (got.shape, want.shape)
        error = np.abs(got - want)
        (y0, y1), (x0, x1) = visible(placement)
        inside = np.zeros(placement.network, bool)
        inside[y0:y1, x0:x1] = True
        assert error[~inside].max(initial=0) < 1e-3, "the padding has the spec's fill value"
        assert error[inside].mean() < MEAN_TOLERANCE, (name, index, error[inside].mean())
        assert np.percentile(error[inside], 99) < P99_TOLERANCE, (name, index, np.percentile(error[inside], 99))
        if t.ORIGINAL_SIZE in out:
            assert out[t.ORIGINAL_SIZE][index].tolist() == list(placement.original)
            assert out[t.RESIZED_SIZE][index].tolist() == list(placement.resized)


# modelgen.preprocess (the bench's in-process path, add-model --verify) approximates the same rules with
# OpenCV: INTER_AREA where Pillow filters with a triangle, so edges differ by up to ~25 levels (p99 ~11)
# on these block images; the geometry, the padding, the dtype and the colour order must still be exact.
OPENCV_MEAN_TOLERANCE = 2.0


@pytest.mark.parametrize("name", CASES)
def test_opencv_preprocessing_follows_the_same_rules(name):
    from triton_vision_authoring.add_model.ensemble_spec import parse_spec
    from triton_vision_models.preprocessing import network_input

    raw = CASES[name]
    post = {"format": "torchvision"} if raw["resize"] == "keep-aspect" else {"format": "class-map"}
    task = "detection" if raw["resize"] == "keep-aspect" else "segmentation"
    data = {"name": "x", "task": task, "model": "m.onnx", "labels": "l.txt", "preprocess": raw, "postprocess": post}
    pre = parse_spec(fs.toml_text(data), Path("/specs/x.toml")).preprocess
    for image in (LANDSCAPE, PORTRAIT):
        want, placement = reference(image, pre, raw)
        got = network_input(image, pre)
        assert got.pixels.dtype == (np.uint8 if pre.dtype == "uint8" else np.float32)
        assert (got.original, got.resized) == (placement.original, placement.resized)
        pixels = in_pixel_units(got.pixels, pre)
        assert pixels.shape == want.shape
        (y0, y1), (x0, x1) = visible(placement)
        inside = np.zeros(placement.network, bool)
        inside[y0:y1, x0:x1] = True
        error = np.abs(pixels - want)
        assert error[~inside].max(initial=0) < 1e-3, "the padding has the spec's fill value"
        assert error[inside].mean() < OPENCV_MEAN_TOLERANCE, (name, error[inside].mean())
