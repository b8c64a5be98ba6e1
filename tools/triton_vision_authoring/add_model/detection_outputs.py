"""The output checks of the detection-like formats whose outputs say more than boxes: Ultralytics' rows
(4 box + classes, then mask coefficients or keypoints) and torchvision's keypoints; a spec and a file that
disagree are refused naming both sides."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from triton_vision_authoring.add_model.ensemble_spec import EnsembleSpec, SpecError
from triton_vision_authoring.add_model.keypoint_keys import COCO_KEYPOINTS, COCO_SKELETON, KeypointKeys

if TYPE_CHECKING:
    from triton_vision_authoring.add_model.onnx_model import ModelSignature, Tensor


def check_yolo(spec: EnsembleSpec, signature: ModelSignature, out: dict[str, Tensor], labels: int, where: str, refuse):
    """Ultralytics' outputs: rows of 4 box + C classes (+ M mask coefficients, M = the prototypes')."""
    predictions, fmt = out["predictions"], spec.format
    prototypes = out.get("prototypes")
    masks, extra = 0, ""
    if prototypes is not None:
        if len(prototypes.shape) != 4 or prototypes.shape[1] < 1:
            raise refuse("prototypes", "[batch, masks, height, width]")
        masks = prototypes.shape[1]
        extra = f" + {masks} mask coefficients"
    if fmt == "yolo-pose":
        joints, values, said = pose_shape(spec, signature, where)
        masks, extra = joints * values, f" + {joints} x {values} keypoint values (kpt_shape {[joints, values]}, {said})"
        signature.keypoint_shape = (joints, values)
        signature.keypoint_names, signature.skeleton = resolve(spec.postprocess.keypoints, joints, where)
    if len(predictions.shape) != 3:
        raise refuse("predictions", f"[batch, 4 + classes{' + masks' if masks else ''}, candidates]")
    if predictions.shape[1] <= 0:
        return
    count = predictions.shape[1] - 4 - masks
    if count >= 1 and count + spec.postprocess.label_offset <= labels:
        signature.num_classes = count
        return
    hint = ""
    others = [t for t in signature.outputs if t.name != predictions.name and len(t.shape) == 4]
    if fmt == "yolo" and others and others[0].shape[1] > 0 and count - others[0].shape[1] == labels:
        hint = (
            f"; output '{others[0].name}' {list(others[0].shape)} looks like a segment model's mask prototypes: "
            'task = "instance-segmentation", format = "yolo-seg"'
        )
    raise SpecError(
        f"{where}: format '{fmt}' reads output '{predictions.name}' {list(predictions.shape)} as 4 box + {count} "
        f"classes{extra}, the label file {spec.label_name} has {labels} lines "
        f"(label_offset {spec.postprocess.label_offset}){hint}"
    )


def pose_shape(spec: EnsembleSpec, signature: ModelSignature, where: str) -> tuple[int, int, str]:
    """yolo-pose's (J, values per keypoint) and who said it: the spec, else the file's metadata; a spec and a
    file that disagree are refused naming both."""
    said, shape = spec.postprocess.keypoints.shape, signature.file_keypoint_shape
    if said is not None and shape is not None and tuple(said) != tuple(shape):
        raise SpecError(
            f"{where}: [postprocess] keypoint_shape = {list(said)} but the file's metadata says kpt_shape {list(shape)}"
        )
    if said is not None:
        return said[0], said[1], "the spec's keypoint_shape"
    if shape is not None:
        return shape[0], shape[1], "the file's metadata"
    raise SpecError(
        f"{where}: format 'yolo-pose' needs the keypoints' shape, which the file's metadata does not give: "
        "[postprocess] keypoint_shape = [keypoints, 2 or 3]"
    )


def check_keypointrcnn(spec: EnsembleSpec, signature: ModelSignature, out: dict[str, Tensor], where: str, refuse):
    """torchvision's keypoints [batch, K, J, 3] and their scores [batch, K, J]: J from the file, else the names."""
    points, scores = out["keypoints"], out["keypoint_scores"]
    if len(points.shape) != 4 or points.shape[-1] not in (3, -1):
        raise refuse("keypoints", "[batch, detections, keypoints, 3]")
    if len(scores.shape) != 3:
        raise refuse("keypoint_scores", "[batch, detections, keypoints]")
    names = spec.postprocess.keypoints.names
    joints = points.shape[2] if points.shape[2] > 0 else (len(names) if names else -1)
    if joints < 1:
        raise SpecError(
            f"{where}: output '{points.name}' {list(points.shape)} does not say how many keypoints: "
            "[postprocess] keypoint_names = [...]"
        )
    signature.keypoint_shape = (joints, 3)
    signature.keypoint_names, signature.skeleton = resolve(spec.postprocess.keypoints, joints, where)


def file_keypoint_shape(marks: dict[str, str]) -> tuple[int, int] | None:
    """Ultralytics' ``kpt_shape`` metadata ([J, 2 or 3]), where the file has it."""
    try:
        shape = ast.literal_eval(marks.get("kpt_shape", "None"))
    except (ValueError, SyntaxError):
        return None
    if isinstance(shape, (list, tuple)) and len(shape) == 2 and all(isinstance(v, int) for v in shape):
        return int(shape[0]), int(shape[1])
    return None


def resolve(keys: KeypointKeys, count: int, where: str) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    """The names and skeleton of ``count`` keypoints: the spec's, else COCO's for 17, else numbered."""
    names = keys.names
    if names is not None and len(names) != count:
        raise SpecError(
            f"{where}: [postprocess] keypoint_names lists {len(names)} names, the model has {count} keypoints"
        )
    coco = count == len(COCO_KEYPOINTS)
    names = names or (COCO_KEYPOINTS if coco else tuple(f"keypoint{i}" for i in range(count)))
    skeleton = keys.skeleton if keys.skeleton is not None else (COCO_SKELETON if coco else ())
    bad = next((pair for pair in skeleton if not all(0 <= i < count for i in pair)), None)
    if bad is not None:
        raise SpecError(
            f"{where}: [postprocess] skeleton pair {list(bad)} names a keypoint beyond the {count} keypoints"
        )
    return names, skeleton
