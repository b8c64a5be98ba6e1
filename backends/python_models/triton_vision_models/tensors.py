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
CLASSIFIER_INPUT_SIZE = 224
CLASSIFIER_RESIZE_SHORTER = 256
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# model_info: what the repository's ONNX files are (downloaded, imported or stand-in).
MODEL_INFO = "model_info"
INFO_QUERY = "QUERY"  # BYTES [1], ignored for now ("sources")
INFO_JSON = "INFO"  # BYTES [1]: JSON {model name: {"kind": ..., "origin": ..., "sha256": ...}}
SOURCE_FILENAME = "model.source.json"  # written next to each model.onnx
