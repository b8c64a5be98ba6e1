"""Classification preprocessing, as the ONNX model zoo's ResNet-18 expects it.

Encoded JPEG/PNG -> RGB -> shorter side 256 (linear, antialiased, whole-pixel output size as
Pillow and torchvision make it) -> centre crop 224x224 ->
(x/255 - mean) / std -> CHW float32. Decodes on "mixed" (nvJPEG) when the pipeline has a
GPU, on "cpu" otherwise. Follows the DALI backend's autoserialization convention.
"""

from nvidia.dali import Pipeline, fn, pipeline_def, types
from nvidia.dali.plugin.triton import autoserialize

RESIZE_SHORTER = 256
CROP = 224
MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
STD = [0.229 * 255, 0.224 * 255, 0.225 * 255]


@autoserialize
@pipeline_def(batch_size=32, num_threads=2, device_id=0)
def classification_preprocess():
    encoded = fn.external_source(device="cpu", name="IMAGE", dtype=types.UINT8, ndim=1)
    decoder = "mixed" if Pipeline.current().device_id is not None else "cpu"
    images = fn.decoders.image(encoded, device=decoder, output_type=types.RGB)
    images = fn.resize(
        images, resize_shorter=RESIZE_SHORTER, interp_type=types.INTERP_LINEAR, antialias=True, subpixel_scale=False
    )
    return fn.crop_mirror_normalize(
        images,
        crop=(CROP, CROP),
        mean=MEAN,
        std=STD,
        dtype=types.FLOAT,
        output_layout="CHW",
    )
