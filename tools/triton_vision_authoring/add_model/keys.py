"""Every key of an ensemble spec, per table, with its type and meaning: the reference the parser checks
unknown keys against and the README's key table is rendered from (a unit test ties the two)."""

from __future__ import annotations

# Each composing model's queue (docs/reliability.md#bounded-queues-and-overload):
# at most this many requests wait, more are refused at once; a request that has waited this long
# is refused. For classification 32 waiting single-image requests are about a second of work at the
# ONNX step; 2 s leaves a lone folder job (4 requests of 32 images in flight) unrefused (measured:
# see docs/performance.md).
DEFAULT_MAX_QUEUE_SIZE = 32
DEFAULT_QUEUE_TIMEOUT_MS = 2000

# Every key, per table, with its meaning: (type, meaning). The README's reference table is tied to it.
KEYS: dict[str, dict[str, tuple[str, str]]] = {
    "": {
        "name": (
            "string",
            "the ensemble's name; its composing models are NAME_preprocess, NAME_model, NAME_postprocess",
        ),
        "task": (
            "string",
            "classification, detection, segmentation, embedding, instance-segmentation or keypoints (detection's "
            "keys apply to the last two)",
        ),
        "model": ("path", "the ONNX file, relative to the spec file (copied into NAME_model/1/model.onnx)"),
        "labels": ("path", "one class name per line; CLASS_IDS index its lines (0-based); not for embedding"),
        "model_name": ("string", "the ONNX model's name in the repository (default NAME_model)"),
        "max_batch_size": (
            "integer",
            "images per request, 1..32 (default 32 classification, 4 otherwise; 1 if the model cannot batch)",
        ),
        "description": ("string", "a line for the generated configs' comments"),
        "cache": (
            "boolean",
            "the guard, preprocessing and model form NAME_infer, an ensemble with Triton's response cache, so "
            "a repeated image skips them when the server has a cache (serve --cache-size); false: one "
            "ensemble of four steps (default true)",
        ),
        "shared_prefix": (
            "string",
            "the prefix of the shared models it calls (PREFIXimage_guard, PREFIXmodel_info); "
            "export-repo --prefix writes it (default none)",
        ),
        "max_queue_size": (
            "integer",
            "requests that may wait in each of its models' queues; more are refused at once with UNAVAILABLE "
            f"(0: no bound; default {DEFAULT_MAX_QUEUE_SIZE})",
        ),
        "queue_timeout_ms": (
            "integer",
            "a request that has waited this long in one of its models' queues is refused with UNAVAILABLE "
            f"(0: no limit; default {DEFAULT_QUEUE_TIMEOUT_MS})",
        ),
    },
    "preprocess": {
        "resize": ("string", "shorter-crop, stretch, letterbox or keep-aspect (see below)"),
        "size": ("[height, width]", "the network input's size (keep-aspect: omit for free dimensions)"),
        "shorter": ("integer", "shorter-crop: the shorter side before the centre crop (torchvision's Resize)"),
        "min_size": ("number", "keep-aspect: target of the shorter side"),
        "max_size": ("number", "keep-aspect: cap of the longer side"),
        "size_divisible": (
            "integer",
            "keep-aspect: the network input's height and width are padded (bottom/right, zeros) up to multiples "
            "of this, as FPN detectors need (32; default 1)",
        ),
        "pad": ("string", "letterbox: top-left or center (default center)"),
        "fill": (
            'number or "mean"',
            'letterbox: the padding, a pixel value 0..255 or "mean" (0 after normalisation; default)',
        ),
        "channels": ("string", "RGB or BGR (default RGB)"),
        "layout": ("string", "NCHW or NHWC (default NCHW)"),
        "dtype": ("string", "float32, or uint8 (raw 0..255 pixels, no normalisation; default float32)"),
        "mean": ("[3 numbers]", "float32: value = (pixel / 255 - mean) / std, in the order of `channels` (default 0)"),
        "std": ("[3 numbers]", "see mean (default 1)"),
        "pixel_mean": (
            "[3 numbers]",
            "float32: value = (pixel - pixel_mean) / pixel_std on 0..255 pixels, in the order of `channels` "
            "(Detectron's and mmdetection's units); instead of mean and std",
        ),
        "pixel_std": ("[3 numbers]", "see pixel_mean (default 1)"),
        "interpolation": ("string", "linear, cubic or nearest (default linear)"),
        "antialias": (
            "boolean",
            "filter when shrinking (default: as resize_like's library does: pillow true, opencv false; dali true)",
        ),
        "resize_like": (
            "string",
            "whose resize and rounding the CPU path reproduces exactly: pillow (Image.resize, torchvision's), "
            "opencv (cv2.resize, Ultralytics' and YOLOX's) or dali (DALI's own, as on a GPU); default pillow for "
            "shorter-crop and stretch, opencv for letterbox, dali for keep-aspect (see Resize rules)",
        ),
    },
    "postprocess": {
        "output": ("string", "classification: logits (softmax applied) or probabilities (default logits)"),
        "format": (
            "string",
            "detection: torchvision, tf-od, yolo, yolov5 or yolox; segmentation: logits-nchw, logits-nhwc or "
            "class-map; instance-segmentation: yolo-seg or torchvision-maskrcnn; keypoints: yolo-pose or "
            "torchvision-keypointrcnn",
        ),
        "label_offset": ("integer", "detection: the label of model class id c is line c + label_offset (default 0)"),
        "tensors": ("table", "the model's output tensors by role, where they are not the conventional names (below)"),
        "top_k": (
            "integer",
            "classification: default of the top_k request parameter (default 5, or the class count if fewer)",
        ),
        "score_threshold": ("number", "detection: default of the score_threshold request parameter (default 0.5)"),
        "max_detections": ("integer", "detection: default of the max_detections request parameter (default 100)"),
        "iou_threshold": (
            "number",
            "detection (yolo, yolov5, yolox, yolo-seg, yolo-pose): default of the iou_threshold request parameter "
            "(default 0.45)",
        ),
        "normalize": (
            "boolean",
            "embedding: EMBEDDING divided by its L2 norm, so a dot product is the cosine similarity (default true)",
        ),
        "pooling": (
            "string",
            "embedding: none (an output [D] or [D, 1, 1] per image), or for a token output [T, D]: cls (its first "
            "token) or mean (the mean of all T tokens); default none",
        ),
        "keypoint_names": (
            "list of strings",
            "keypoints: the keypoints' names in the model's order (default: COCO's 17 for 17 keypoints, "
            "else keypoint0, ...)",
        ),
        "skeleton": (
            "list of [a, b]",
            "keypoints: pairs of keypoint indices (0-based) joined when drawn (default: COCO's for 17 "
            "keypoints, else none)",
        ),
        "keypoint_shape": (
            "[keypoints, 2 or 3]",
            "keypoints (yolo-pose): keypoints per detection and values per keypoint (x, y[, visibility]); default: the "
            "file's Ultralytics metadata kpt_shape",
        ),
    },
    "inputs": {
        "image": ("string", "the model input that takes the pixels (default: the only image-shaped input)"),
        "image_sizes": ("string", "detection: an INT64 [batch, 2] input fed each image's resized (height, width)"),
    },
    "tensors": {
        "inputs": ("list of tables", "built-in models whose file is prepared later: name, dtype, dims (no batch)"),
        "outputs": ("list of tables", "see inputs"),
        "max_batch_size": ("integer", "see inputs"),
        "batch_added": (
            "boolean",
            "the file has no batch dimension: `models prepare` adds one, and the model takes one image per "
            "execution (max_batch_size 1; default false)",
        ),
    },
}


def reference_table(tables: dict[str, dict[str, tuple[str, str]]] | None = None) -> str:
    """A spec reference table (docs), rendered from ``tables`` (default :data:`KEYS`; a test ties the two)."""
    rows = ["| key | type | meaning |", "| --- | --- | --- |"]
    for table, keys in (KEYS if tables is None else tables).items():
        for key, (kind, meaning) in keys.items():
            where = f"`{key}`" if not table else f"`[{table}]` `{key}`"
            rows.append(f"| {where} | {kind} | {meaning} |")
    return "\n".join(rows)
