"""Tensor names, request parameters and defaults shared by the models, the client and tests.

The config.pbtxt files repeat these names (Triton reads them there); the offline config
tests check that every config agrees with this module.
"""

# Every ensemble's input: one encoded JPEG/PNG per batch element, UINT8 [-1], zero-padded.
IMAGE = "IMAGE"

# Classification ensemble.
CLASSIFICATION = "classification"
CLASSIFICATION_PREPROCESS = "classification_preprocess"
CLASSIFIER = "resnet18"
CLASSIFICATION_POSTPROCESS = "classification_postprocess"
PIXELS = "PIXELS"  # preprocess output: FP32 [3, 224, 224], RGB, ImageNet mean/std
CLASSIFIER_INPUT = "data"  # the ONNX model zoo's resnet18-v1-7 contract
CLASSIFIER_OUTPUT = "resnetv15_dense0_fwd"
LOGITS = "LOGITS"  # postprocess input: FP32 [1000]
CLASS_IDS = "CLASS_IDS"  # INT32 [k]
SCORES = "SCORES"  # FP32 [k], softmax probabilities
LABELS = "LABELS"  # BYTES [k]
TOP_K = "top_k"  # request parameter
DEFAULT_TOP_K = 5
CLASSIFICATION_MAX_BATCH = 32  # images per request (max_batch_size of classification)
CLASSIFIER_INPUT_SIZE = 224
CLASSIFIER_RESIZE_SHORTER = 256
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# model_info: what the repository's ONNX files are (downloaded, imported or stand-in).
MODEL_INFO = "model_info"
INFO_QUERY = "QUERY"  # BYTES [1], ignored for now ("sources")
INFO_JSON = "INFO"  # BYTES [1]: JSON {model name: {"kind": ..., "origin": ..., "sha256": ...}}
SOURCE_FILENAME = "model.source.json"  # written next to each model.onnx

# Segmentation ensemble.
SEGMENTATION = "segmentation"
SEGMENTATION_PREPROCESS = "segmentation_preprocess"
SEGMENTER = "fcn_resnet50"
SEGMENTATION_POSTPROCESS = "segmentation_postprocess"
SEGMENTER_INPUT = "input"  # the ONNX model zoo's fcn-resnet50-11 contract: FP32 [N, 3, H, W]
SEGMENTER_OUTPUT = "out"  # FP32 [N, 21, H, W] logits
SEGMENTER_AUX = "aux"  # FP32 [N, 21, H, W] auxiliary head (not used by the ensemble)
# preprocess outputs: PIXELS FP32 [3, 520, 520] (letterboxed: resized so the longer side is
# 520, zero-padded bottom/right after normalisation), and two INT32 [2] sizes (height, width):
ORIGINAL_SIZE = "ORIGINAL_SIZE"  # of the decoded image
RESIZED_SIZE = "RESIZED_SIZE"  # of the image inside the canvas (the unpadded region)
SEGMENTATION_CANVAS = 520  # working resolution: the longer side, and the square canvas
# postprocess input LOGITS: FP32 [21, 520, 520]; ensemble outputs per image:
MASK = "MASK"  # UINT8 [H, W] class ids, padded with MASK_PAD to the request's largest H and W
MASK_SIZE = "MASK_SIZE"  # INT32 [2]: the image's own (height, width); crop MASK[:h, :w]
MASK_PAD = 255  # VOC's "void" label: never a class id
CLASS_FRACTIONS = "CLASS_FRACTIONS"  # FP32 [21]: fraction of the image's pixels per class
OVERLAY = "OVERLAY"  # BYTES [1]: PNG, image blended 50/50 with the coloured mask; b"" unless asked
OVERLAY_PARAMETER = "overlay"  # request parameter: bool or "true"/"false" (default false)
VOC_CLASSES = 21
SEGMENTATION_MAX_BATCH = 4  # images per request (max_batch_size of segmentation)

# Detection ensemble (Faster R-CNN). Up to DETECTION_MAX_BATCH images per request: the exported
# detector loops over the batch (an ONNX Loop around the traced single-image graph).
DETECTION = "detection"
DETECTION_PREPROCESS = "detection_preprocess"
DETECTOR = "faster_rcnn"
DETECTOR_MOBILENET = "faster_rcnn_mobilenet_v3"  # catalogue option: same directory, MobileNetV3 weights
DETECTION_POSTPROCESS = "detection_postprocess"
# preprocess outputs: PIXELS FP32 [3, H, W] (resized, ImageNet mean/std) and the sizes below
ORIGINAL_SIZE = "ORIGINAL_SIZE"  # INT64 [2]: height, width of the decoded image the client sent
RESIZED_SIZE = "RESIZED_SIZE"  # INT64 [2]: height, width of the detector input (before padding)
DETECTION_MAX_BATCH = 4  # images per request (max_batch_size of detection and faster_rcnn)
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
# ensemble outputs, per image, padded to the request's largest K: BOXES FP32 [K, 4] (x1 y1 x2 y2,
# original pixels), SCORES FP32 [K], CLASS_IDS INT32 [K] (COCO ids), LABELS BYTES [K],
# COUNT INT32 [1] (this image's K; rows beyond it are padding)
BOXES = "BOXES"
COUNT = "COUNT"
SCORE_THRESHOLD = "score_threshold"  # request parameter, float in [0, 1]
MAX_DETECTIONS = "max_detections"  # request parameter, int >= 1
DEFAULT_SCORE_THRESHOLD = 0.5
DEFAULT_MAX_DETECTIONS = 100
DETECTOR_MIN_SIZE = 800  # torchvision's resize rule: scale = min(800 / shorter, 1333 / longer)
DETECTOR_MAX_SIZE = 1333

# image_guard: every ensemble's first step; checks headers and limits, passes IMAGE through.
IMAGE_GUARD = "image_guard"
CHECKED_IMAGE = "CHECKED_IMAGE"
