"""Segmentation preprocessing for FCN-ResNet50: a letterbox into a fixed 520x520 canvas.

Encoded JPEG/PNG -> RGB -> resized (linear, antialiased, aspect kept) so that the longer side is
520 (each side rounded to the nearest pixel) -> (x/255 - mean) / std -> zero-padded at the bottom
and right to 520x520 -> CHW float32. Also returns the decoded image's (height, width) and the
resized image's (height, width), the unpadded region of the canvas, as INT64 [2] each.
Decodes on "mixed" (nvJPEG) when the pipeline has a GPU, on "cpu" otherwise. Follows the DALI
backend's autoserialization convention.
"""

from nvidia.dali import Pipeline, fn, pipeline_def, types
from nvidia.dali.plugin.triton import autoserialize

CANVAS = 520
MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
STD = [0.229 * 255, 0.224 * 255, 0.225 * 255]


@autoserialize
@pipeline_def(batch_size=4, num_threads=2, device_id=0)
def segmentation_preprocess():
    encoded = fn.external_source(device="cpu", name="IMAGE", dtype=types.UINT8, ndim=1)
    decoder = "mixed" if Pipeline.current().device_id is not None else "cpu"
    images = fn.decoders.image(encoded, device=decoder, output_type=types.RGB)
    original_size = fn.slice(fn.shapes(images, dtype=types.INT64), 0, 2, axes=[0])
    images = fn.resize(
        images,
        size=[CANVAS, CANVAS],
        mode="not_larger",
        interp_type=types.INTERP_LINEAR,
        antialias=True,
    )
    resized_size = fn.slice(fn.shapes(images, dtype=types.INT64), 0, 2, axes=[0])
    pixels = fn.crop_mirror_normalize(
        images,
        crop=(CANVAS, CANVAS),
        crop_pos_x=0.0,
        crop_pos_y=0.0,
        out_of_bounds_policy="pad",
        fill_values=0.0,
        mean=MEAN,
        std=STD,
        dtype=types.FLOAT,
        output_layout="CHW",
    )
    return pixels, original_size, resized_size
