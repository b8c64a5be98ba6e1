"""Export torchvision's Faster R-CNN to the ``faster_rcnn_torchvision`` tensor signature (export extra only):
the model of the ``torchvision_detection`` ensemble (examples/torchvision_detection), not the built-in one.

torch/torchvision are imported lazily, here only: serving never needs them.

The exported graph is the detector *without* torchvision's own pre- and post-processing:
``GeneralizedRCNNTransform`` keeps only its padding to a multiple of 32; normalisation and the
resize (scale = min(800/shorter, 1333/longer)) happen in DALI (``torchvision_detection_preprocess``),
and boxes come out in the pixels of the resized model input; ``torchvision_detection_postprocess``
maps them back to the original image. Tensor signature (B images per call, any B; see :func:`export_model`):

- input ``images``      FP32 [B, 3, H, W] (RGB, ImageNet mean/std, already resized; each image
  top-left, zero-padded to the batch's largest height and width)
- input ``image_sizes`` INT64 [B, 2] (each image's height, width before padding)
- output ``boxes``  FP32 [B, 100, 4] (x1, y1, x2, y2 in model-input pixels, clipped to the image)
- output ``scores`` FP32 [B, 100] (descending, >= 0.05: torchvision's box_score_thresh)
- output ``labels`` INT64 [B, 100] (COCO category ids, 91-id numbering, 1 = person)
- output ``count``  INT64 [B, 1] (detections per image; rows beyond it are zero padding)
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import onnx

from triton_vision_authoring import standins
from triton_vision_authoring.torch_tools import require_torch
from triton_vision_models import tensors as t
from triton_vision_models.errors import ModelFileError

ARCHITECTURES = {
    "resnet50_fpn_v2": "fasterrcnn_resnet50_fpn_v2",
    "mobilenet_v3": "fasterrcnn_mobilenet_v3_large_fpn",
}
OPSET = 17
EXPORT_SIZE = (800, 1066)  # a typical resized 4:3 photo; H and W stay dynamic in the file


def _torch() -> Any:
    return require_torch("exporting Faster R-CNN")


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
    """Export ``model`` (eval mode) to ONNX with the batched ``faster_rcnn_torchvision`` tensor signature.

    torchvision's detector loops over images in Python, so a trace fixes the image count. The
    single-image detector is traced once; a scripted wrapper loops over the batch (an ONNX
    ``Loop``), crops each image to its ``image_sizes`` (dropping the batch padding, so an image's
    answer does not depend on the images it travels with) and pads each image's detections to
    ``TORCHVISION_MAX_DETECTIONS`` rows, with their number in ``count``.
    """
    torch = _torch()
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every Python-side shape computation in torchvision's detection
        # code (and torch.jit.script about its deprecation); the graph is checked against
        # torchvision's eager model and against itself image by image by the tests instead.
        warnings.simplefilter("ignore")
        exported = _onnx_export(torch, _batched_detector(torch, model))
    exported.producer_name = "triton-vision"
    exported.doc_string = description
    exported.ir_version = min(exported.ir_version, standins.IR_VERSION)
    return exported


def _detector_modules(torch: Any) -> tuple[type, type]:
    """The single-image detector (torchvision's, without its own transform) and the batch loop."""

    class SingleImageDetector(torch.nn.Module):
        def __init__(self, detector, rows: int) -> None:
            super().__init__()
            detector.transform = _input_pixels_transform(detector.transform)
            detector.roi_heads.detections_per_img = rows
            self.detector = detector

        def forward(self, image):
            detections = self.detector([image[0]])[0]
            return detections["boxes"], detections["scores"], detections["labels"]

    class BatchedDetector(torch.nn.Module):
        def __init__(self, single, rows: int) -> None:
            super().__init__()
            self.single = single
            self.rows = rows  # an int attribute: a constant in the scripted graph

        def forward(self, images: torch.Tensor, image_sizes: torch.Tensor):
            boxes_out = []
            scores_out = []
            labels_out = []
            counts = []
            for i in range(images.shape[0]):
                image = images[i : i + 1, :, : image_sizes[i, 0], : image_sizes[i, 1]]
                boxes, scores, labels = self.single(image)
                n = scores.shape[0]
                pad = self.rows - n
                boxes_out.append(torch.cat([boxes, torch.zeros(pad, 4, dtype=boxes.dtype)], 0))
                scores_out.append(torch.cat([scores, torch.zeros(pad, dtype=scores.dtype)], 0))
                labels_out.append(torch.cat([labels, torch.zeros(pad, dtype=labels.dtype)], 0))
                counts.append(torch.full([1], n, dtype=torch.int64))
            return torch.stack(boxes_out), torch.stack(scores_out), torch.stack(labels_out), torch.stack(counts)

    return SingleImageDetector, BatchedDetector


def _batched_detector(torch: Any, model: Any) -> Any:
    """The single-image detector traced once, inside the scripted loop over the batch."""
    single_class, batched_class = _detector_modules(torch)
    rows = t.TORCHVISION_MAX_DETECTIONS
    single = torch.jit.trace(single_class(model, rows).eval(), (torch.rand(1, 3, *EXPORT_SIZE),), check_trace=False)
    return torch.jit.script(batched_class(single, rows).eval())


def _onnx_export(torch: Any, batched: Any) -> onnx.ModelProto:
    """``batched`` as an ONNX graph with the signature's names and dynamic batch/height/width."""
    names_out = [t.TORCHVISION_BOXES, t.TORCHVISION_SCORES, t.TORCHVISION_LABELS, t.TORCHVISION_COUNT]
    example = (torch.rand(2, 3, *EXPORT_SIZE), torch.tensor([list(EXPORT_SIZE)] * 2, dtype=torch.int64))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            batched,
            example,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[t.TORCHVISION_INPUT, t.TORCHVISION_IMAGE_SIZES],
            output_names=names_out,
            dynamic_axes={
                t.TORCHVISION_INPUT: {0: "batch", 2: "height", 3: "width"},
                t.TORCHVISION_IMAGE_SIZES: {0: "batch"},
                **{name: {0: "batch"} for name in names_out},
            },
        )
        return onnx.load(str(path))


def export_faster_rcnn(arch: str, state_dict_path: Path | None = None) -> onnx.ModelProto:
    """The ONNX file for ``arch``: from a local/downloaded state dict, or a marked random stand-in."""
    model = build_torchvision_model(arch, state_dict_path)
    if state_dict_path is None:
        return standins.mark_stand_in(export_model(model, description=f"{ARCHITECTURES[arch]}, RANDOM weights"))
    exported = export_model(model, description=f"{ARCHITECTURES[arch]} from {Path(state_dict_path).name}")
    onnx.checker.check_model(exported)
    return exported
