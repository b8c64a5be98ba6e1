"""The wire contract of triton-vision's ensembles: what a client sends and gets back.

Dependency-free (the standard library only), so the thin client and the server's models import
the same facts. The ``config.pbtxt`` files repeat these names (Triton reads them there); the
offline config tests check every config against this module and
``triton_vision_models.tensors`` (the server-internal names).
"""

from __future__ import annotations

from collections.abc import Iterable

# -- where a server listens by default (tritonserver's own defaults) ---------------------------
DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002

# -- every ensemble ------------------------------------------------------------------------
IMAGE = "IMAGE"  # UINT8 [batch, bytes]: one encoded JPEG/PNG per row, zero-padded to the longest
# `triton-vision serve` serves each ensemble *fused* (its steps in one process) by a Python-based
# backend of this name; the config names the ensemble's steps in the parameter ENSEMBLE_STEPS
# (comma-separated), where Triton's own ensembles have ``ensemble_scheduling``.
FUSED_BACKEND = "fused_ensemble"
ENSEMBLE_STEPS = "ensemble_steps"


def is_ensemble_config(config: dict) -> bool:
    """Whether a server's model config (Triton's JSON) is an ensemble's: Triton's or a fused one."""
    return config.get("platform") == "ensemble" or config.get("backend") == FUSED_BACKEND


def ensemble_steps(config: dict) -> list[str]:
    """The models an ensemble's config names as its steps, in order, each once ([] for other models)."""
    if config.get("platform") == "ensemble":
        names = [str(step.get("model_name", "")) for step in config.get("ensemble_scheduling", {}).get("step", [])]
    elif config.get("backend") == FUSED_BACKEND:
        raw = config.get("parameters", {}).get(ENSEMBLE_STEPS, {})
        names = str(raw.get("string_value", "") if isinstance(raw, dict) else raw).split(",")
    else:
        names = []
    return list(dict.fromkeys(name for name in names if name))


# -- overload: bounded queues, and a way past them for health probes ----------------------------
# Every composing model's dynamic batcher has two priority levels (Triton: 1 is served first).
# Requests go at DEFAULT_PRIORITY, whose queue is bounded; health probes (`triton-vision probe`,
# serve's own) send PROBE_PRIORITY, whose small queue is served first and has no wait limit, so a
# busy server still answers its probes. Ensembles pass a request's priority to their steps.
PRIORITY_LEVELS = 2
PROBE_PRIORITY = 1
DEFAULT_PRIORITY = 2
# What Triton answers (UNAVAILABLE over gRPC, 503 over HTTP) when a composing model refuses a
# request for load: its queue holds max_queue_size requests, or the request waited its queue
# timeout. Triton's ensemble scheduler puts "in ensemble 'NAME', " before it; a fused ensemble's
# queue (serve's) refuses in a model's words, without it (docs/reliability.md#bounded-queues-and-overload).
QUEUE_FULL_PHRASE = "Exceeds maximum queue size"
QUEUE_TIMEOUT_PHRASE = "Request timeout expired"
BUSY_PHRASES = (QUEUE_FULL_PHRASE, QUEUE_TIMEOUT_PHRASE)


def is_busy(message: str) -> bool:
    """Whether a server's error message is a refusal for load (a full queue, a queue wait limit)."""
    return any(phrase in message for phrase in BUSY_PHRASES)


# -- classification --------------------------------------------------------------------------
CLASSIFICATION = "classification"
CLASSIFIER = "resnet18"  # the ensemble's ONNX model (named in stand-in warnings)
CLASS_IDS = "CLASS_IDS"  # INT32 [k]: ImageNet class ids, best first
SCORES = "SCORES"  # FP32 [k]: softmax probabilities (detection: FP32 [K] scores)
LABELS = "LABELS"  # BYTES [k]: class names (detection: [K]; segmentation: the 21 VOC names)
TOP_K = "top_k"  # request parameter, integer MIN_TOP_K..number of classes (the server names its bound)
MIN_TOP_K = 1
DEFAULT_TOP_K = 5
CLASSIFICATION_MAX_BATCH = 32  # images per request (max_batch_size of classification)

# -- detection ---------------------------------------------------------------------------
DETECTION = "detection"
DETECTOR = "faster_rcnn"
BOXES = "BOXES"  # FP32 [K, 4]: x1 y1 x2 y2 in the original image's pixels
COUNT = "COUNT"  # INT32 [1]: this image's number of detections (rows beyond it are padding)
SCORE_THRESHOLD = "score_threshold"  # request parameter, float in [0, 1]
MAX_DETECTIONS = "max_detections"  # request parameter, int >= 1
DEFAULT_SCORE_THRESHOLD = 0.5
DEFAULT_MAX_DETECTIONS = 100
DETECTION_MAX_BATCH = 1  # images per request (max_batch_size of detection: its model takes one image a call)

# -- segmentation ------------------------------------------------------------------------
SEGMENTATION = "segmentation"
SEGMENTER = "fcn_resnet50"
MASK = "MASK"  # UINT8 [H, W] class ids, padded with MASK_PAD to the request's largest H and W
MASK_SIZE = "MASK_SIZE"  # INT32 [2]: the image's own (height, width); crop MASK[:h, :w]
MASK_PAD = 255  # VOC's "void" label: never a class id
CLASS_FRACTIONS = "CLASS_FRACTIONS"  # FP32 [21]: fraction of the image's pixels per class
OVERLAY = "OVERLAY"  # BYTES [1]: PNG, image blended 50/50 with the coloured mask; b"" unless asked
OVERLAY_PARAMETER = "overlay"  # request parameter: bool or "true"/"false" (default false)
VOC_CLASSES = 21
SEGMENTATION_MAX_BATCH = 4  # images per request (max_batch_size of segmentation)

# -- embedding ---------------------------------------------------------------------------
EMBEDDING = "embedding"  # the task
# FP32 [D] per image: the model's embedding (a [D] or [D, 1, 1] output, or a [T, D] token output pooled
# by the spec's rule), L2-normalised (x / max(||x||, 1e-12)) unless the spec says normalize = false.
EMBEDDING_OUTPUT = "EMBEDDING"

# -- pipeline: a detection ensemble, then a second ensemble on every object ------------------------
# The detection outputs above (BOXES ... COUNT) plus, per object, the second stage's answer, each
# [K, ...] padded like BOXES: a classifier's top-k, or an embedder's vector.
PIPELINE = "pipeline"
OBJECT_CLASS_IDS = "OBJECT_CLASS_IDS"  # INT32 [K, k]: the second classifier's class ids, best first
OBJECT_SCORES = "OBJECT_SCORES"  # FP32 [K, k]: its probabilities
OBJECT_LABELS = "OBJECT_LABELS"  # BYTES [K, k]: its labels
OBJECT_EMBEDDINGS = "OBJECT_EMBEDDINGS"  # FP32 [K, D]: the second embedder's vectors
MAX_OBJECTS = "max_objects"  # request parameter, int >= 1: the highest-scored objects kept
# The second stage's outputs under their per-object names, by the second stage's task.
OBJECT_OUTPUTS = {
    CLASSIFICATION: {CLASS_IDS: OBJECT_CLASS_IDS, SCORES: OBJECT_SCORES, LABELS: OBJECT_LABELS},
    EMBEDDING: {EMBEDDING_OUTPUT: OBJECT_EMBEDDINGS},
}
OBJECT_NAMES = frozenset(name for outputs in OBJECT_OUTPUTS.values() for name in outputs.values())

# -- instance segmentation: the detection outputs plus one map of instances per image -----------
INSTANCE_SEGMENTATION = "instance-segmentation"  # the task
# UINT16 [H, W] at the image's original size: k (1..COUNT) where detection k (BOXES order, best first)
# covers the pixel and no higher-scored one does, 0 elsewhere; a batch's rows are padded with
# INSTANCE_PAD to the request's largest H and W (bottom/right, so the image's own rows hold no INSTANCE_PAD).
INSTANCE_MAP = "INSTANCE_MAP"
INSTANCE_PAD = 65535

# -- keypoints: the detection outputs plus each detection's keypoints ----------------------------
KEYPOINT_TASK = "keypoints"  # the task
# FP32 [K, J, 3]: per detection (BOXES order, rows padded with zeros like BOXES) its J keypoints' x, y in
# original pixels and confidence (the model's own: yolo-pose's visibility probability, 1 where its export has
# none; torchvision-keypointrcnn's keypoint heatmap score, unbounded).
KEYPOINTS = "KEYPOINTS"
KEYPOINT_NAMES = "KEYPOINT_NAMES"  # BYTES [J]: the keypoints' names, in KEYPOINTS order
SKELETON = "SKELETON"  # INT32 [E, 2]: pairs of keypoint indices joined when drawn (E may be 0)

# -- model_info: what the repository's ONNX files are (downloaded, imported or stand-in) ----
MODEL_INFO = "model_info"
INFO_QUERY = "QUERY"  # BYTES [1]: "sources" (anything else too) or "ensembles"
# BYTES [1]: JSON {model name: {"kind", "origin", "sha256" (the served file's), "arrived_sha256" (the origin
# file's, present where serving it meant rewriting it)}}
INFO_JSON = "INFO"
INFO_SOURCES = "sources"
INFO_ENSEMBLES = "ensembles"  # INFO: JSON list of the repository's ensemble names, loaded or not

# -- tasks: every ensemble answers with its task's outputs, whatever its model ------------------
TASK_OUTPUTS = {
    CLASSIFICATION: (CLASS_IDS, SCORES, LABELS),
    DETECTION: (BOXES, SCORES, CLASS_IDS, LABELS, COUNT),
    SEGMENTATION: (MASK, MASK_SIZE, CLASS_FRACTIONS, LABELS, OVERLAY),
    EMBEDDING: (EMBEDDING_OUTPUT,),
    INSTANCE_SEGMENTATION: (BOXES, SCORES, CLASS_IDS, LABELS, COUNT, INSTANCE_MAP),
    KEYPOINT_TASK: (BOXES, SCORES, CLASS_IDS, LABELS, COUNT, KEYPOINTS, KEYPOINT_NAMES, SKELETON),
    # and the per-object outputs of its second stage's task (OBJECT_OUTPUTS): see outputs_to_ask
    PIPELINE: (BOXES, SCORES, CLASS_IDS, LABELS, COUNT),
}
TASKS = tuple(TASK_OUTPUTS)
BUILT_IN_ENSEMBLES = (CLASSIFICATION, DETECTION, SEGMENTATION)  # named after their tasks
# The `triton-vision` command that asks an ensemble of each task.
TASK_COMMANDS = {
    CLASSIFICATION: "classify",
    DETECTION: "detect",
    SEGMENTATION: "segment",
    EMBEDDING: "embed",
    INSTANCE_SEGMENTATION: "instances",
    KEYPOINT_TASK: "keypoints",
    PIPELINE: "pipeline",
}


def task_of(outputs: Iterable[str]) -> str | None:
    """The task whose wire contract a model's output names carry, or None (not an ensemble of ours)."""
    names = set(outputs)
    if set(TASK_OUTPUTS[PIPELINE]) <= names and names & OBJECT_NAMES:
        return PIPELINE
    # most specific first: all share LABELS, and instances and keypoints answer detection's outputs too
    for task in (INSTANCE_SEGMENTATION, KEYPOINT_TASK, SEGMENTATION, DETECTION, CLASSIFICATION, EMBEDDING):
        if set(TASK_OUTPUTS[task]) <= names:
            return task
    return None


def outputs_to_ask(task: str, served: Iterable[str]) -> tuple[str, ...]:
    """The outputs to request from an ensemble of ``task`` whose config lists ``served``: the task's,
    and a pipeline's per-object outputs of its second stage."""
    extra = tuple(name for name in served if name in OBJECT_NAMES) if task == PIPELINE else ()
    return TASK_OUTPUTS[task] + extra


# Each built-in ensemble's images per request, by ensemble name (the server's tools read it; a client
# asks the server: any ensemble's max_batch_size is in its config).
MAX_BATCH = {
    CLASSIFICATION: CLASSIFICATION_MAX_BATCH,
    DETECTION: DETECTION_MAX_BATCH,
    SEGMENTATION: SEGMENTATION_MAX_BATCH,
}


def voc_palette(size: int = 256) -> list[tuple[int, int, int]]:
    """The Pascal VOC colour map as ``size`` RGB triples: the bits of each class id, interleaved.

    Bit ``3j`` of the id sets bit ``7 - j`` of red, bit ``3j + 1`` of green, bit ``3j + 2`` of blue.
    """
    palette = []
    for class_id in range(size):
        rgb = [0, 0, 0]
        for j in range(8):
            for channel in range(3):
                rgb[channel] |= ((class_id >> (3 * j + channel)) & 1) << (7 - j)
        palette.append((rgb[0], rgb[1], rgb[2]))
    return palette
