"""Detection preprocessing, exactly as torchvision's Faster R-CNN transform does it.

Encoded JPEG/PNG -> RGB -> resize by scale = min(800 / shorter, 1333 / longer), output size
floor(side * scale) computed in float64 (torchvision's GeneralizedRCNNTransform rule), bilinear
without antialiasing, kept in float -> (x/255 - mean) / std -> CHW float32, zero-padded at the
bottom/right to the largest height and width of the batch (so that differently sized images form
one batch tensor; the detector crops each image back to its resized size and pads to a multiple
of 32 itself). Also returns the decoded (original) and the resized height/width, so
that the post-processing can map boxes back to the pixels of the image the client sent.
Decodes on "mixed" (nvJPEG) when the pipeline has a GPU, on "cpu" otherwise. Follows the DALI
backend's autoserialization convention; self-contained (the native DALI backend runs it).
"""

from nvidia.dali import Pipeline, fn, math, pipeline_def, types
from nvidia.dali.plugin.triton import autoserialize

MIN_SIZE = 800.0
MAX_SIZE = 1333.0
MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
STD = [0.229 * 255, 0.224 * 255, 0.225 * 255]


@autoserialize
@pipeline_def(batch_size=8, num_threads=2, device_id=0)
def detection_preprocess():
    encoded = fn.external_source(device="cpu", name="IMAGE", dtype=types.UINT8, ndim=1)
    decoder = "mixed" if Pipeline.current().device_id is not None else "cpu"
    images = fn.decoders.image(encoded, device=decoder, output_type=types.RGB)
    # The decoded shape [H, W, C] (EXIF orientation applied), read from the encoded bytes on the
    # CPU: resize's size argument must live on the CPU even when the images are on the GPU.
    shape = fn.peek_image_shape(encoded, dtype=types.INT64)
    height = fn.cast(shape[0], dtype=types.FLOAT64)
    width = fn.cast(shape[1], dtype=types.FLOAT64)
    min_size = types.Constant(MIN_SIZE, dtype=types.FLOAT64)
    max_size = types.Constant(MAX_SIZE, dtype=types.FLOAT64)
    scale = math.min(min_size / math.min(height, width), max_size / math.max(height, width))
    out_height = fn.cast(math.floor(height * scale), dtype=types.FLOAT)
    out_width = fn.cast(math.floor(width * scale), dtype=types.FLOAT)
    resized = fn.resize(
        images,
        size=fn.stack(out_height, out_width),
        interp_type=types.INTERP_LINEAR,
        antialias=False,
        dtype=types.FLOAT,
    )
    pixels = fn.crop_mirror_normalize(resized, mean=MEAN, std=STD, dtype=types.FLOAT, output_layout="CHW")
    # Zero after normalisation, as torchvision's own batching pads; the sizes say what is image.
    pixels = fn.pad(pixels, axis_names="HW", fill_value=0.0)
    original_size = shape[0:2]
    # Computed on the CPU like resize's size (not fn.shapes of GPU data), equal to the resized shape.
    resized_size = fn.cast(fn.stack(out_height, out_width), dtype=types.INT64)
    return pixels, original_size, resized_size
