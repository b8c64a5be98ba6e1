"""The ONNX models ``models prepare`` makes, keyed by name: their tensor signatures, pinned downloads and
stand-ins (:mod:`.models` puts them in place).

Each built-in ensemble's model is a pinned download that needs nothing but the network: the ONNX model
zoo's ResNet-18, FCN-ResNet50 and Faster R-CNN. The torchvision Faster R-CNN exports (the ``export``
extra: torch) serve their own ensemble, ``examples/torchvision_detection``, from its own directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from triton_vision_authoring import standins
from triton_vision_models import tensors as t

# The ONNX model zoo's files are Git LFS objects behind GitHub's raw URLs: each sha256 below is the oid of
# the file's LFS pointer in github.com/onnx/models (and its ONNX_HUB_MANIFEST.json model_sha), the size
# beside it the pointer's.


@dataclass(frozen=True)
class TensorSignature:
    """Tensor names (and non-batch shapes, -1 free) a model file must have."""

    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str


@dataclass(frozen=True)
class ModelEntry:
    name: str  # model directory in the repository
    description: str
    signature: TensorSignature
    # The real architecture with random weights; None: only the download has it (the stand-in is small_stand_in).
    build_stand_in: Callable[[], onnx.ModelProto] | None
    downloads: tuple[Download, ...] = field(default_factory=tuple)
    # Turns a non-ONNX weights file (a torchvision .pth state dict) into the ONNX model; None: ONNX only.
    convert: Callable[[Path], onnx.ModelProto] | None = None
    # Same tensor signature without torch: where build_stand_in needs it (an export), or is None.
    small_stand_in: Callable[[], onnx.ModelProto] | None = None
    # The choice a user faces once this model is in place (`models prepare` prints it); None: none.
    choice: str | None = None
    # The file has no batch dimension (the signature's shapes are the file's own): `models prepare` adds
    # one (add-model's mechanism), and the model is served with max_batch_size 1.
    unbatched: bool = False


CATALOGUE: dict[str, ModelEntry] = {
    t.CLASSIFIER: ModelEntry(
        name=t.CLASSIFIER,
        description="ResNet-18 v1 (ONNX model zoo resnet18-v1-7)",
        signature=TensorSignature(
            inputs={t.CLASSIFIER_INPUT: (3, t.CLASSIFIER_INPUT_SIZE, t.CLASSIFIER_INPUT_SIZE)},
            outputs={t.CLASSIFIER_OUTPUT: (1000,)},
        ),
        build_stand_in=lambda: standins.resnet18_model(t.CLASSIFIER_INPUT, t.CLASSIFIER_OUTPUT),
        downloads=(
            Download(
                url="https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet18-v1-7.onnx",
                sha256="4e8f8653e7a2222b3904cc3fe8e304cd8b339ce1d05fd24688162f86fb6df52c",  # 46820737 bytes
            ),
        ),
    ),
}


def _fcn_stand_in() -> onnx.ModelProto:
    from triton_vision_authoring.segmentation_onnx import torchvision_fcn

    return torchvision_fcn()


def _small_fcn() -> onnx.ModelProto:
    from triton_vision_authoring.segmentation_onnx import tiny_fcn

    return tiny_fcn()


CATALOGUE[t.SEGMENTER] = ModelEntry(
    name=t.SEGMENTER,
    description="FCN-ResNet50 (ONNX model zoo fcn-resnet50-11, 21 Pascal VOC classes)",
    signature=TensorSignature(
        inputs={t.SEGMENTER_INPUT: (3, -1, -1)},
        outputs={t.SEGMENTER_OUTPUT: (t.VOC_CLASSES, -1, -1), t.SEGMENTER_AUX: (t.VOC_CLASSES, -1, -1)},
    ),
    build_stand_in=_fcn_stand_in,
    small_stand_in=_small_fcn,
    downloads=(
        Download(
            url="https://github.com/onnx/models/raw/main/validated/vision/object_detection_segmentation/fcn/model/fcn-resnet50-11.onnx",
            sha256="8abd3ae6c258e6fd210d8fb296261ea5c0603c6cc2f568db6097f6fbaaeff0d5",  # 141193553 bytes
        ),
    ),
)


# -- detection: the ONNX model zoo's Faster R-CNN R-50-FPN (maskrcnn-benchmark, converted at opset 12) ------
# Its tensor signature (the zoo's ONNX_HUB_MANIFEST.json io_ports, and its README): input "image" FP32
# [3, H, W]; outputs "6379" boxes FP32 [n, 4], "6381" labels INT64 [n], "6383" scores FP32 [n]. No batch
# dimension: one image per call. Its preprocessing is the detection ensemble's spec (model_repository/detection).
CATALOGUE[t.DETECTOR] = ModelEntry(
    name=t.DETECTOR,
    description="Faster R-CNN R-50-FPN (ONNX model zoo FasterRCNN-12, COCO box mAP 0.343, 80 classes)",
    signature=TensorSignature(
        inputs={t.DETECTOR_INPUT: (3, -1, -1)},
        outputs={t.DETECTOR_BOXES: (-1, 4), t.DETECTOR_LABELS: (-1,), t.DETECTOR_SCORES: (-1,)},
    ),
    build_stand_in=None,  # the real architecture exists only as the download
    small_stand_in=lambda: standins.small_unbatched_detector(
        t.DETECTOR_INPUT, (t.DETECTOR_BOXES, t.DETECTOR_LABELS, t.DETECTOR_SCORES)
    ),
    downloads=(
        Download(
            url="https://github.com/onnx/models/raw/main/validated/vision/object_detection_segmentation/faster-rcnn/model/FasterRCNN-12.onnx",
            sha256="789104f5a47f008450a37e02da8a8d3642766ed10d91238312b1532fe72789a6",  # 176713194 bytes
        ),
    ),
    unbatched=True,
)


# -- the torchvision Faster R-CNN, exported (export extra): examples/torchvision_detection -----------------
# Measured with `bench --ensemble torchvision_detection --compare-onnx` (docs/performance.md): the two
# architectures in-process on 2 cores, 3101 and 505 ms per photo; box mAP from torchvision's weights table.
DETECTOR_CHOICE = {
    "resnet50_fpn_v2": (
        "on a CPU this detector takes about 3 s per photo (2 cores); `triton-vision models prepare --model "
        f"{t.TORCHVISION_DETECTOR_MOBILENET} --force` serves MobileNetV3-Large-FPN instead: about 6x faster, box "
        "mAP 32.8 instead of 46.7 (docs/performance.md). On a GPU keep this one."
    ),
    "mobilenet_v3": (
        "MobileNetV3-Large-FPN is the CPU choice (about 0.5 s per photo on 2 cores, box mAP 32.8); on a GPU, "
        f"`triton-vision models prepare --model {t.TORCHVISION_DETECTOR} --force` serves ResNet-50-FPN v2 (box "
        "mAP 46.7)."
    ),
}


def _faster_rcnn_entry(arch: str, description: str, download: Download) -> ModelEntry:
    def stand_in() -> onnx.ModelProto:
        from triton_vision_authoring.detection_onnx import export_faster_rcnn

        return export_faster_rcnn(arch)

    def convert(path: Path) -> onnx.ModelProto:
        from triton_vision_authoring.detection_onnx import export_faster_rcnn

        return export_faster_rcnn(arch, path)

    return ModelEntry(
        name=t.TORCHVISION_DETECTOR,  # both architectures serve from the example ensemble's one directory
        description=description,
        choice=DETECTOR_CHOICE[arch],
        signature=TensorSignature(
            inputs={t.TORCHVISION_INPUT: (3, -1, -1), t.TORCHVISION_IMAGE_SIZES: (2,)},
            outputs={
                t.TORCHVISION_BOXES: (-1, 4),
                t.TORCHVISION_SCORES: (-1,),
                t.TORCHVISION_LABELS: (-1,),
                t.TORCHVISION_COUNT: (1,),
            },
        ),
        build_stand_in=stand_in,
        downloads=(download,),
        convert=convert,
        small_stand_in=lambda: standins.small_detector(
            t.TORCHVISION_INPUT,
            t.TORCHVISION_IMAGE_SIZES,
            (t.TORCHVISION_BOXES, t.TORCHVISION_SCORES, t.TORCHVISION_LABELS, t.TORCHVISION_COUNT),
        ),
    )


# Prepared where the repository has the example's directory (`add-model examples/torchvision_detection/...`):
# faster_rcnn_torchvision (ResNet-50-FPN v2); `--model faster_rcnn_mobilenet_v3 [--force]` puts MobileNetV3
# there instead. Downloads are torchvision's COCO_V1 state dicts, exported on arrival.
CATALOGUE[t.TORCHVISION_DETECTOR] = _faster_rcnn_entry(
    "resnet50_fpn_v2",
    "Faster R-CNN ResNet-50-FPN v2 (torchvision COCO_V1, box mAP 46.7), exported to ONNX",
    Download(
        url="https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
        sha256="dd69338a24b8d7381807e247652bdc356325bcbaf1cd3e092e00e0a1a58706bf",
    ),
)
CATALOGUE[t.TORCHVISION_DETECTOR_MOBILENET] = _faster_rcnn_entry(
    "mobilenet_v3",
    "Faster R-CNN MobileNetV3-Large-FPN (torchvision COCO_V1, box mAP 32.8; CPU-friendly), exported to ONNX",
    Download(
        url="https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
        sha256="fb6a3cc702b1df54c18a44b26708cd083614211062d0c36d2ca7bf9270df3533",
    ),
)
