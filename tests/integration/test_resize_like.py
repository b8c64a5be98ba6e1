"""The real Ultralytics YOLOv8n (int8, 320) served with ``resize_like`` = opencv (the letterbox's
default) against Ultralytics' own pipeline written here: its LetterBox (cv2.resize INTER_LINEAR, grey
114), ONNX Runtime in-process, its decoding and NMS, its ``scale_boxes``. Every reference detection
scoring >= 0.5 must be answered (same class, IoU >= 0.7), at a median IoU >= 0.995.

The same file behind DALI's own resize (``resize_like = "dali"``, antialiased: what the GPU path and
the native DALI backend do) is measured beside it; the test prints both (-s).
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from tests.conftest import SHARED, shared_path
from tests.integration.conftest import running_server
from tests.support.format_models import toml_text
from tests.support.format_references import iou, ref_yolo
from tests.support.images import encode
from triton_vision_client.client import VisionClient

pytestmark = pytest.mark.integration

YOLO = "models/yolov8n_int8_320.onnx"
MATCH_IOU = 0.7
MEDIAN_IOU = 0.995


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from triton_vision_authoring.add_model.add_model import add_model

    model = shared_path(YOLO)
    specs = tmp_path_factory.mktemp("yolo_specs")
    (specs / "coco80.txt").write_text("".join(f"class{i}\n" for i in range(80)))
    repository = tmp_path_factory.mktemp("yolo_repo")
    for name, extra in (("yolo_exact", {}), ("yolo_dali", {"resize_like": "dali"})):
        spec = {
            "name": name,
            "task": "detection",
            "model": str(model),
            "labels": "coco80.txt",
            "preprocess": {"resize": "letterbox", "size": [320, 320], "pad": "center", "fill": 114, **extra},
            "postprocess": {"format": "yolo", "score_threshold": 0.25, "iou_threshold": 0.45},
        }
        (specs / f"{name}.toml").write_text(toml_text(spec))
        add_model(specs / f"{name}.toml", repository)
    with running_server(repository) as server, VisionClient(server.options.grpc_url, "grpc") as connected:
        yield connected


def photos() -> dict[str, bytes]:
    from skimage import data

    found = {p.name: p.read_bytes() for p in sorted((SHARED / "images").glob("*.jpg"))}
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        found[f"{name}.jpg"] = encode(Image.fromarray(getattr(data, name)()), "JPEG", quality=92)
    return found


def ultralytics(data: bytes, session: ort.InferenceSession):
    """Boxes (original pixels), scores, classes: LetterBox(320, auto=False) as Ultralytics writes it, /255,
    the file in-process, conf 0.25 / iou 0.45 class-wise NMS, scale_boxes and clip."""
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    h0, w0 = rgb.shape[:2]
    r = min(320 / h0, 320 / w0)
    new_w, new_h = int(round(w0 * r)), int(round(h0 * r))
    dw, dh = (320 - new_w) / 2, (320 - new_h) / 2
    image = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR) if (new_w, new_h) != (w0, h0) else rgb
    top, bottom, left, right = (int(round(v)) for v in (dh - 0.1, dh + 0.1, dw - 0.1, dw + 0.1))
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    pixels = (image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    (raw,) = session.run(None, {"images": pixels})
    boxes, scores, classes = ref_yolo(raw[0], 0.25, 0.45, 300)
    gain = min(320 / h0, 320 / w0)
    pad_x, pad_y = round((320 - w0 * gain) / 2 - 0.1), round((320 - h0 * gain) / 2 - 0.1)
    boxes = (boxes - [pad_x, pad_y, pad_x, pad_y]) / gain
    return np.clip(boxes, 0, [w0, h0, w0, h0]), scores, classes


def agreement(client, ensemble: str, found: dict[str, bytes], session) -> tuple[list[float], list[str]]:
    """IoU of each reference detection >= 0.5 with the best served one of its class; the unmatched."""
    # One image per execution, as Ultralytics runs them: the int8 file quantizes its activations per batch
    # (DynamicQuantizeLinear), so an image batched with another gets slightly other answers.
    served = client.detect(list(found.values()), score_threshold=0.25, ensemble=ensemble, batch=1, concurrency=1)
    ious: list[float] = []
    missed: list[str] = []
    for (name, data), answer in zip(found.items(), served, strict=True):
        boxes, scores, classes = ultralytics(data, session)
        for box, score, cls in zip(boxes, scores, classes, strict=True):
            if score < 0.5:
                continue
            same = [iou(box, np.asarray(b)) for b, c in zip(answer.boxes, answer.class_ids, strict=True) if c == cls]
            best = max(same, default=0.0)
            if best >= MATCH_IOU:
                ious.append(best)
            else:
                missed.append(f"{name}: class {cls}")
    return ious, missed


def test_real_yolo_boxes_agree_with_ultralytics_pipeline(client):
    session = ort.InferenceSession(str(shared_path(YOLO)), providers=["CPUExecutionProvider"])
    found = photos()
    ious, missed = agreement(client, "yolo_exact", found, session)
    dali_ious, dali_missed = agreement(client, "yolo_dali", found, session)
    for label, values, lost in (("resize_like opencv", ious, missed), ("DALI resize", dali_ious, dali_missed)):
        print(
            f"{label}: {len(values)} of {len(values) + len(lost)} reference detections >= 0.5 matched, "
            f"IoU median {np.median(values):.4f}, min {min(values):.4f}; unmatched {lost}"
        )
    assert not missed
    assert len(ious) >= 10
    assert float(np.median(ious)) >= MEDIAN_IOU
