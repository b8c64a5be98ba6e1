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
    EMBEDDING,
    EMBEDDING_OUTPUT,
    IMAGE,
    INFO_ENSEMBLES,
    INFO_JSON,
    INFO_QUERY,
    INSTANCE_MAP,
    INSTANCE_PAD,
    INSTANCE_SEGMENTATION,
    KEYPOINT_NAMES,
    KEYPOINT_TASK,
    KEYPOINTS,
    LABELS,
    MASK,
    MASK_PAD,
    MASK_SIZE,
    MAX_BATCH,
    MAX_DETECTIONS,
    MAX_OBJECTS,
    MODEL_INFO,
    OBJECT_CLASS_IDS,
    OBJECT_EMBEDDINGS,
    OBJECT_LABELS,
    OBJECT_OUTPUTS,
    OBJECT_SCORES,
    OVERLAY,
    OVERLAY_PARAMETER,
    PIPELINE,
    SCORE_THRESHOLD,
    SCORES,
    SEGMENTATION,
    SEGMENTATION_MAX_BATCH,
    SEGMENTER,
    SKELETON,
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

# Detection ensemble: the ONNX model zoo's Faster R-CNN R-50-FPN (FasterRCNN-12.onnx, from
# maskrcnn-benchmark), whose file has no batch dimension: `models prepare` adds one of 1, so the
# ensemble takes one image per request (DETECTION_MAX_BATCH).
DETECTION_INFER = "detection_infer"
DETECTION_PREPROCESS = "detection_preprocess"
DETECTION_POSTPROCESS = "detection_postprocess"
# preprocess outputs: PIXELS FP32 [3, H, W] (BGR, 0..255 minus DETECTOR_PIXEL_MEAN, padded to multiples
# of 32), ORIGINAL_SIZE and RESIZED_SIZE
DETECTOR_INPUT = "image"  # FP32 [3, H, W] in the file; [1, 3, H, W] served
DETECTOR_BOXES = "6379"  # FP32 [n, 4], x1 y1 x2 y2 in detector-input pixels
DETECTOR_LABELS = "6381"  # INT64 [n], 1..80: lines of coco_classes.txt (0 is the background)
DETECTOR_SCORES = "6383"  # FP32 [n]
DETECTOR_MIN_SIZE = 800  # the resize rule: scale = min(800 / shorter, 1333 / longer)
DETECTOR_MAX_SIZE = 1333
DETECTOR_SIZE_DIVISIBLE = 32  # the padded input's height and width are multiples of it
DETECTOR_PIXEL_MEAN = (102.9801, 115.9465, 122.7717)  # BGR, subtracted from 0..255 pixels (std 1)
DETECTOR_LABEL_FILE = "coco_classes.txt"

# The torchvision Faster R-CNN export (examples/torchvision_detection: its own ensemble, spec and
# directory): B images per call, an ONNX Loop around the traced single-image graph.
TORCHVISION_DETECTOR = "faster_rcnn_torchvision"  # its model directory (ResNet-50-FPN v2 by default)
TORCHVISION_DETECTOR_MOBILENET = "faster_rcnn_mobilenet_v3"  # catalogue option: same directory, MobileNetV3
TORCHVISION_INPUT = "images"  # FP32 [3, H, W], RGB ImageNet mean/std, zero-padded to the batch's largest H and W
TORCHVISION_IMAGE_SIZES = "image_sizes"  # INT64 [2]: the image's height, width before padding
TORCHVISION_MAX_DETECTIONS = 100  # torchvision's detections_per_img: rows per image below
TORCHVISION_BOXES = "boxes"  # FP32 [100, 4], x1 y1 x2 y2 in detector-input pixels
TORCHVISION_SCORES = "scores"  # FP32 [100]
TORCHVISION_LABELS = "labels"  # INT64 [100], COCO category ids (91-id numbering)
TORCHVISION_COUNT = "count"  # INT64 [1]: how many of the rows above are detections

# postprocess inputs (the detector's outputs under these names)
RAW_BOXES = "RAW_BOXES"
RAW_SCORES = "RAW_SCORES"
RAW_LABELS = "RAW_LABELS"
RAW_COUNT = "RAW_COUNT"
RAW_PREDICTIONS = "RAW_PREDICTIONS"  # yolo format: FP32 [4 + classes, candidates] (centre x, y, w, h, scores)
RAW_EMBEDDING = "RAW_EMBEDDING"  # embedding: the model's output, [D], [D, 1, 1] or tokens [T, D]
# Instance segmentation: yolo-seg's RAW_PREDICTIONS rows end with M mask coefficients, and RAW_PROTOTYPES FP32
# [M, h, w] are its mask prototypes over the network input; torchvision-maskrcnn's RAW_MASKS FP32 [K, 1, H, W]
# are per-detection probabilities over the network input.
RAW_PROTOTYPES = "RAW_PROTOTYPES"
RAW_MASKS = "RAW_MASKS"
# Keypoints: yolo-pose's RAW_PREDICTIONS rows end with J x (x, y[, confidence]) in network-input pixels;
# torchvision-keypointrcnn's RAW_KEYPOINTS FP32 [K, J, 3] (x, y, visibility) and RAW_KEYPOINT_SCORES [K, J].
RAW_KEYPOINTS = "RAW_KEYPOINTS"
RAW_KEYPOINT_SCORES = "RAW_KEYPOINT_SCORES"
CLASS_MAP = "CLASS_MAP"  # segmentation format "class-map": the model's class ids [H, W]
# ensemble outputs, per image, padded to the request's largest K: BOXES FP32 [K, 4] (x1 y1 x2 y2,
# original pixels), SCORES FP32 [K], CLASS_IDS INT32 [K] (label file lines), LABELS BYTES [K],
# COUNT INT32 [1] (this image's K; rows beyond it are padding)

# image_guard: every ensemble's first step; checks headers and limits, passes IMAGE through.
IMAGE_GUARD = "image_guard"
CHECKED_IMAGE = "CHECKED_IMAGE"
