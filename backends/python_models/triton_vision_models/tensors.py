"""Tensor and model names of the server side: the wire contract plus the internal steps.

What a client sends and receives is defined once in :mod:`triton_vision_contract` (dependency-free,
shared with the thin client) and re-exported here; the names below are the ensembles' internal
steps. The config.pbtxt files repeat these names (Triton reads them there); the offline config
tests check that every config agrees with this module.
"""

from triton_vision_contract import (  # noqa: F401 - re-exported: the models import one module
    BOXES,
    CLASS_FRACTIONS,
    CLASS_IDS,
    CLASSIFICATION,
    CLASSIFICATION_MAX_BATCH,
    CLASSIFIER,
    COUNT,
    DEFAULT_MAX_DETECTIONS,
    DEFAULT_SCORE_THRESHOLD,
    DEFAULT_TOP_K,
    DETECTION,
    DETECTION_MAX_BATCH,
    DETECTOR,
    IMAGE,
    INFO_ENSEMBLES,
    INFO_JSON,
    INFO_QUERY,
    LABELS,
    MASK,
    MASK_PAD,
    MASK_SIZE,
    MAX_BATCH,
    MAX_DETECTIONS,
    MODEL_INFO,
    OVERLAY,
    OVERLAY_PARAMETER,
    SCORE_THRESHOLD,
    SCORES,
    SEGMENTATION,
    SEGMENTATION_MAX_BATCH,
    SEGMENTER,
    TOP_K,
    VOC_CLASSES,
)

# Classification ensemble.
CLASSIFICATION_INFER = "classification_infer"  # guard -> preprocess -> model, response-cached
CLASSIFICATION_PREPROCESS = "classification_preprocess"
CLASSIFICATION_POSTPROCESS = "classification_postprocess"
PIXELS = "PIXELS"  # preprocess output: FP32 [3, 224, 224], RGB, ImageNet mean/std
CLASSIFIER_INPUT = "data"  # the ONNX model zoo's resnet18-v1-7 tensor signature
CLASSIFIER_OUTPUT = "resnetv15_dense0_fwd"
LOGITS = "LOGITS"  # postprocess input: FP32 [1000]
CLASSIFIER_INPUT_SIZE = 224
CLASSIFIER_RESIZE_SHORTER = 256
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Detection and segmentation preprocessing: per image, INT64 [2] (height, width).
ORIGINAL_SIZE = "ORIGINAL_SIZE"  # of the decoded image the client sent
RESIZED_SIZE = "RESIZED_SIZE"  # of the resized image (the unpadded region of PIXELS)

# model_info: what the repository's ONNX files are (downloaded, imported or stand-in).
SOURCE_FILENAME = "model.source.json"  # written next to each model.onnx

# Segmentation ensemble.
SEGMENTATION_INFER = "segmentation_infer"
SEGMENTATION_PREPROCESS = "segmentation_preprocess"
SEGMENTATION_POSTPROCESS = "segmentation_postprocess"
SEGMENTER_INPUT = "input"  # the ONNX model zoo's fcn-resnet50-11 tensor signature: FP32 [N, 3, H, W]
SEGMENTER_OUTPUT = "out"  # FP32 [N, 21, H, W] logits
SEGMENTER_AUX = "aux"  # FP32 [N, 21, H, W] auxiliary head (not used by the ensemble)
# preprocess outputs: PIXELS FP32 [3, 520, 520] (letterboxed: resized so the longer side is
# 520, zero-padded bottom/right after normalisation), ORIGINAL_SIZE and RESIZED_SIZE (below)
SEGMENTATION_CANVAS = 520  # working resolution: the longer side, and the square canvas
# postprocess input LOGITS: FP32 [21, 520, 520]

# Detection ensemble (Faster R-CNN). Up to DETECTION_MAX_BATCH images per request: the exported
# detector loops over the batch (an ONNX Loop around the traced single-image graph).
DETECTION_INFER = "detection_infer"
DETECTION_PREPROCESS = "detection_preprocess"
DETECTOR_MOBILENET = "faster_rcnn_mobilenet_v3"  # catalogue option: same directory, MobileNetV3 weights
DETECTION_POSTPROCESS = "detection_postprocess"
# preprocess outputs: PIXELS FP32 [3, H, W] (resized, ImageNet mean/std), ORIGINAL_SIZE and RESIZED_SIZE
DETECTOR_INPUT = "images"  # FP32 [3, H, W], zero-padded to the batch's largest H and W
DETECTOR_IMAGE_SIZES = "image_sizes"  # INT64 [2]: the image's height, width before padding
DETECTOR_MAX_DETECTIONS = 100  # torchvision's detections_per_img: rows per image below
DETECTOR_BOXES = "boxes"  # FP32 [100, 4], x1 y1 x2 y2 in detector-input pixels
DETECTOR_SCORES = "scores"  # FP32 [100]
DETECTOR_LABELS = "labels"  # INT64 [100], COCO category ids (91-id numbering)
DETECTOR_COUNT = "count"  # INT64 [1]: how many of the rows above are detections
# postprocess inputs (the detector's outputs under these names)
RAW_BOXES = "RAW_BOXES"
RAW_SCORES = "RAW_SCORES"
RAW_LABELS = "RAW_LABELS"
RAW_COUNT = "RAW_COUNT"
RAW_PREDICTIONS = "RAW_PREDICTIONS"  # yolo format: FP32 [4 + classes, candidates] (centre x, y, w, h, scores)
CLASS_MAP = "CLASS_MAP"  # segmentation format "class-map": the model's class ids [H, W]
# ensemble outputs, per image, padded to the request's largest K: BOXES FP32 [K, 4] (x1 y1 x2 y2,
# original pixels), SCORES FP32 [K], CLASS_IDS INT32 [K] (COCO ids), LABELS BYTES [K],
# COUNT INT32 [1] (this image's K; rows beyond it are padding)
DETECTOR_MIN_SIZE = 800  # torchvision's resize rule: scale = min(800 / shorter, 1333 / longer)
DETECTOR_MAX_SIZE = 1333

# image_guard: every ensemble's first step; checks headers and limits, passes IMAGE through.
IMAGE_GUARD = "image_guard"
CHECKED_IMAGE = "CHECKED_IMAGE"
