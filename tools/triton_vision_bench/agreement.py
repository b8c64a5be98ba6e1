"""Two detectors of the same tensor signature on the same photos, in-process: their speed and how far
their boxes agree (``triton-vision bench --ensemble detection --compare-onnx OTHER.onnx``). The outputs
are read by role, under the names the served ensemble reads them by (the torchvision export's
``boxes``/``scores``/``labels``/``count``, the model zoo Faster R-CNN's ``6379``/``6383``/``6381``).

Both run on the bench's reference preprocessing, one image at a time. A box of one agrees with a box
of the other when both score at least the wire contract's default threshold, carry the same label and
overlap with IoU >= 0.5 (each box matched once, best overlap first). With random-weight stand-ins the
boxes are noise and so is their agreement: the report says so, and the speeds stand.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import triton_vision_contract as contract
from triton_vision_bench.images import BenchImage
from triton_vision_bench.messages import BenchUsageError, progress
from triton_vision_bench.profiles import Profile
from triton_vision_models import tensors as t

MATCH_IOU = 0.5


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [N, 4] with every box of ``b`` [M, 4] (x1, y1, x2, y2): [N, M]."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def matched(first: dict[str, np.ndarray], second: dict[str, np.ndarray], threshold: float = MATCH_IOU) -> int:
    """Boxes of ``first`` and ``second`` ({"boxes", "labels"}) that agree, each matched at most once."""
    overlaps = iou(first["boxes"], second["boxes"])
    same = first["labels"][:, None] == second["labels"][None, :]
    overlaps = np.where(same, overlaps, 0.0)
    count = 0
    while overlaps.size and overlaps.max() >= threshold:
        i, j = np.unravel_index(int(np.argmax(overlaps)), overlaps.shape)
        overlaps[i, :] = 0.0
        overlaps[:, j] = 0.0
        count += 1
    return count


# The post-processing input each output role feeds (generated ensembles: add_model.configs.ROLE_INPUTS).
ROLES = {t.RAW_BOXES: "boxes", t.RAW_SCORES: "scores", t.RAW_LABELS: "labels", t.RAW_COUNT: "count"}


def output_roles(profile: Profile) -> dict[str, str]:
    """The served detector's outputs by role (boxes, scores, labels; count where it has one), read from
    the tensors the ensemble feeds them to (``RAW_BOXES`` or ``raw_boxes``, ...)."""
    roles = {
        ROLES[tensor.upper()]: output for output, tensor in profile.output_tensors.items() if tensor.upper() in ROLES
    }
    missing = [role for role in ("boxes", "scores", "labels") if role not in roles]
    if missing:
        raise BenchUsageError(
            f"--compare-onnx: ensemble '{profile.ensemble}' feeds no {', '.join(missing)} from '{profile.model}' "
            "to its post-processing (a detector with boxes, scores and labels outputs is needed)"
        )
    return roles


def detections(
    session, inputs: dict[str, np.ndarray], score_threshold: float, roles: dict[str, str]
) -> dict[str, np.ndarray]:
    """One image's raw detections at or above ``score_threshold`` (outputs named by ``roles``)."""
    wanted = [role for role in ("boxes", "scores", "labels", "count") if role in roles]
    found = dict(zip(wanted, session.run([roles[role] for role in wanted], inputs), strict=True))
    boxes, scores, labels = (np.asarray(found[role])[0] for role in ("boxes", "scores", "labels"))
    n = int(np.asarray(found["count"]).reshape(-1)[0]) if "count" in found else len(scores)
    keep = scores[:n] >= score_threshold
    return {"boxes": boxes[:n][keep], "labels": labels[:n][keep], "scores": scores[:n][keep]}


def _kind(path: Path) -> str:
    """The model file's recorded kind (model.source.json beside it), or "unknown"."""
    try:
        return str(json.loads((path.parent / t.SOURCE_FILENAME).read_text())["kind"])
    except (OSError, KeyError, ValueError):
        return "unknown"


def compare_detectors(profile: Profile, images: list[BenchImage], other: Path) -> dict[str, Any]:
    """The served model and ``other`` on every bench image: milliseconds per image and box agreement."""
    import onnxruntime as ort

    if profile.task != contract.DETECTION:
        raise BenchUsageError(f"--compare-onnx compares detectors; ensemble '{profile.ensemble}' is {profile.task}")
    if not other.is_file():
        raise BenchUsageError(f"--compare-onnx {other}: no such file")
    threshold = contract.DEFAULT_SCORE_THRESHOLD
    models = {"served": profile.model_path, "other": other}
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: torchvision exports warn about subgraph names at load
    sessions = {
        key: ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        for key, path in models.items()
    }
    roles = output_roles(profile)
    tensors = [profile.preprocess(image.data) for image in images]
    found: dict[str, list[dict[str, np.ndarray]]] = {key: [] for key in models}
    wall: dict[str, list[float]] = {key: [] for key in models}
    for key, session in sessions.items():
        progress(f"detectors: {models[key]} on {len(images)} images ...")
        detections(session, tensors[0], threshold, roles)  # warm-up
        for inputs in tensors:
            start = time.perf_counter()
            found[key].append(detections(session, inputs, threshold, roles))
            wall[key].append(time.perf_counter() - start)
    per_image: list[dict[str, Any]] = []
    counts: list[tuple[int, int, int]] = []
    for image, a, b in zip(images, found["served"], found["other"], strict=True):
        counts.append((len(a["boxes"]), len(b["boxes"]), matched(a, b)))
        per_image.append(dict(zip(("served", "other", "agree"), counts[-1], strict=True), image=image.name))
    total = dict(zip(("served", "other", "agree"), (sum(c[i] for c in counts) for i in range(3)), strict=True))
    union = total["served"] + total["other"] - total["agree"]
    kinds = {key: _kind(path) for key, path in models.items()}
    return {
        "score_threshold": threshold,
        "match_iou": MATCH_IOU,
        "models": {key: str(path) for key, path in models.items()},
        "kinds": kinds,
        "ms_per_image": {key: 1e3 * sum(w) / len(w) for key, w in wall.items()},
        "per_image": per_image,
        "totals": total,
        "agreement": total["agree"] / union if union else float("nan"),
        "meaningful": "stand-in" not in kinds.values(),
    }
