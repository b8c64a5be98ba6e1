"""Export torchvision's Faster R-CNN to the ``faster_rcnn`` tensor contract (export extra only).

torch/torchvision are imported lazily, here only: serving never needs them.

The exported graph is the detector *without* torchvision's own pre- and post-processing:
``GeneralizedRCNNTransform`` keeps only its padding to a multiple of 32; normalisation and the
resize (scale = min(800/shorter, 1333/longer)) happen in DALI (``detection_preprocess``), and
boxes come out in the pixels of the resized model input; ``detection_postprocess`` maps them
back to the original image. Contract (batch axis dynamic in the file, but the traced graph
handles exactly one image, hence ``max_batch_size: 1`` in the config):

- input ``images``  FP32 [1, 3, H, W] (RGB, ImageNet mean/std, already resized)
- output ``boxes``  FP32 [1, N, 4] (x1, y1, x2, y2 in model-input pixels, clipped to H x W)
- output ``scores`` FP32 [1, N] (descending, >= 0.05: torchvision's box_score_thresh)
- output ``labels`` INT64 [1, N] (COCO category ids, 91-id numbering, 1 = person)
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import onnx

from triton_vision_models import tensors as t
from triton_vision_models.errors import ModelFileError

from . import standins

ARCHITECTURES = {
    "resnet50_fpn_v2": "fasterrcnn_resnet50_fpn_v2",
    "mobilenet_v3": "fasterrcnn_mobilenet_v3_large_fpn",
}
OPSET = 17
EXPORT_SIZE = (800, 1066)  # a typical resized 4:3 photo; H and W stay dynamic in the file


def _torch():
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelFileError(
            "exporting Faster R-CNN needs torch and torchvision: pip install 'triton-vision[export]'"
        ) from exc
    return torch


def build_torchvision_model(arch: str, state_dict_path: Path | None = None, *, seed: int = 0):
    """torchvision's Faster R-CNN (91 COCO ids), random weights (seeded) or a local state dict."""
    torch = _torch()
    from torchvision.models import detection

    if arch not in ARCHITECTURES:
        raise ModelFileError(f"unknown Faster R-CNN architecture '{arch}' (known: {', '.join(ARCHITECTURES)})")
    torch.manual_seed(seed)
    model = getattr(detection, ARCHITECTURES[arch])(weights=None, weights_backbone=None, num_classes=91)
    if state_dict_path is not None:
        state = torch.load(str(state_dict_path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]  # a torchvision training-reference checkpoint
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as exc:
            raise ModelFileError(f"{state_dict_path}: not a {ARCHITECTURES[arch]} state dict ({exc})") from None
    return model.eval()


def _input_pixels_transform(transform):
    """A GeneralizedRCNNTransform that only pads: normalize/resize are identities, boxes stay put."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    class InputPixelsTransform(GeneralizedRCNNTransform):
        def normalize(self, image):
            return image

        def resize(self, image, target=None):
            return image, target

        def postprocess(self, result, image_shapes, original_image_sizes):
            return result

    return InputPixelsTransform(
        transform.min_size,
        transform.max_size,
        transform.image_mean,
        transform.image_std,
        size_divisible=transform.size_divisible,
    )


def export_model(model, *, description: str) -> onnx.ModelProto:
    """Trace ``model`` (eval mode) to ONNX with the ``faster_rcnn`` contract."""
    torch = _torch()

    class SingleImageDetector(torch.nn.Module):
        def __init__(self, detector) -> None:
            super().__init__()
            detector.transform = _input_pixels_transform(detector.transform)
            self.detector = detector

        def forward(self, images):
            detections = self.detector([images[0]])[0]
            return (
                detections["boxes"].unsqueeze(0),
                detections["scores"].unsqueeze(0),
                detections["labels"].unsqueeze(0),
            )

    wrapper = SingleImageDetector(model).eval()
    example = torch.rand(1, 3, *EXPORT_SIZE)
    names_out = [t.DETECTOR_BOXES, t.DETECTOR_SCORES, t.DETECTOR_LABELS]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about every Python-side shape computation in torchvision's detection
            # code; the graph is checked against torchvision's eager model by the tests instead.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=[t.DETECTOR_INPUT],
                output_names=names_out,
                dynamic_axes={
                    t.DETECTOR_INPUT: {0: "batch", 2: "height", 3: "width"},
                    t.DETECTOR_BOXES: {0: "batch", 1: "detections"},
                    t.DETECTOR_SCORES: {0: "batch", 1: "detections"},
                    t.DETECTOR_LABELS: {0: "batch", 1: "detections"},
                },
            )
        exported = onnx.load(str(path))
    for output in exported.graph.output:  # the traced unsqueeze(0) says 1; the contract says batch
        output.type.tensor_type.shape.dim[0].dim_param = "batch"
    exported.producer_name = "triton-vision"
    exported.doc_string = description
    return exported


def export_faster_rcnn(arch: str, state_dict_path: Path | None = None) -> onnx.ModelProto:
    """The ONNX file for ``arch``: from a local/downloaded state dict, or a marked random stand-in."""
    model = build_torchvision_model(arch, state_dict_path)
    if state_dict_path is None:
        return standins.mark_stand_in(export_model(model, description=f"{ARCHITECTURES[arch]}, RANDOM weights"))
    exported = export_model(model, description=f"{ARCHITECTURES[arch]} from {Path(state_dict_path).name}")
    onnx.checker.check_model(exported)
    return exported
