"""The folder jobs' tasks (classify, detect, segment, pipeline, embed, instances, keypoints): how each starts its
requests and
saves its files (:class:`~.folderjob.Task`); answers printed as the jobs print them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import triton_vision_contract as contract

from . import records
from .client import VisionClient
from .folderjob import Task, out_path
from .jobs import ImageResult, as_source

DETECTIONS_SUFFIX = ".detections.jpg"
MASK_SUFFIX = "_mask.png"
EMBEDDING_SUFFIX = ".npy"
INSTANCES_SUFFIX = ".instances.jpg"
KEYPOINTS_SUFFIX = ".keypoints.jpg"


def warn_stand_ins(client: VisionClient, models: Sequence[str]) -> list[str]:
    """A warning on stderr for each of ``models`` that is a stand-in; the warnings."""
    warnings = client.stand_in_warnings(models)
    for warning in warnings:
        print(warning, file=sys.stderr)
    return warnings


def job_options(args: argparse.Namespace, on_retry) -> dict:
    """The options every folder job passes to its ``*_many`` call."""
    return {
        "ensemble": args.ensemble,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "retry_for_s": args.retry_for,
        "on_retry": on_retry,
    }


def start_classify(client: VisionClient, sources, args: argparse.Namespace, on_retry):
    return client.classify_many(sources, top_k=args.top_k, **job_options(args, on_retry))


def start_detect(client: VisionClient, sources, args: argparse.Namespace, on_retry):
    return client.detect_many(
        sources,
        score_threshold=args.threshold,
        max_detections=args.max_detections,
        keep_data=True,
        **job_options(args, on_retry),
    )


def save_detect(result: ImageResult, out_dir: Path) -> dict[str, str]:
    """The image with its boxes drawn, as <out_dir>/<its place in the input tree>/<stem>.detections.jpg."""
    import cv2

    from .annotate import annotate_file

    target = out_path(out_dir, result.source, DETECTIONS_SUFFIX)
    if result.data is None:
        raise ValueError("the image's bytes were not kept to draw on")
    if not cv2.imwrite(str(target), annotate_file(result.data, result.answer)):
        raise OSError(f"cannot write {target}")
    return {"annotated": str(target)}


def detection_parameters(args: argparse.Namespace) -> dict:
    """The request parameters of the tasks whose answers are detections, as given."""
    given = ((contract.SCORE_THRESHOLD, args.threshold), (contract.MAX_DETECTIONS, args.max_detections))
    return {name: value for name, value in given if value is not None}


def start_instances(client: VisionClient, sources, args: argparse.Namespace, on_retry):
    return client.infer_many(
        contract.INSTANCE_SEGMENTATION,
        sources,
        detection_parameters(args),
        keep_data=True,
        **job_options(args, on_retry),
    )


def start_pipeline(client: VisionClient, sources, args: argparse.Namespace, on_retry):
    return client.pipeline_many(
        sources,
        score_threshold=args.threshold,
        max_objects=args.max_objects,
        top_k=args.top_k,
        keep_data=True,
        **job_options(args, on_retry),
    )


def save_instances(result: ImageResult, out_dir: Path) -> dict[str, str]:
    """The image with each instance's mask (a colour per instance) and box drawn, as <stem>.instances.jpg."""
    from .annotate import annotate_instances_file

    return save_drawing(result, out_path(out_dir, result.source, INSTANCES_SUFFIX), annotate_instances_file)


def start_keypoints(client: VisionClient, sources, args: argparse.Namespace, on_retry):
    return client.infer_many(
        contract.KEYPOINT_TASK, sources, detection_parameters(args), keep_data=True, **job_options(args, on_retry)
    )


def save_keypoints(result: ImageResult, out_dir: Path) -> dict[str, str]:
    """The image with each detection's box, skeleton and keypoints drawn, as <stem>.keypoints.jpg."""
    from .annotate import annotate_keypoints_file

    return save_drawing(result, out_path(out_dir, result.source, KEYPOINTS_SUFFIX), annotate_keypoints_file)


def save_drawing(result: ImageResult, target: Path, draw) -> dict[str, str]:
    import cv2

    if result.data is None:
        raise ValueError("the image's bytes were not kept to draw on")
    if not cv2.imwrite(str(target), draw(result.data, result.answer)):
        raise OSError(f"cannot write {target}")
    return {"annotated": str(target)}


def start_segment(client: VisionClient, sources, args: argparse.Namespace, on_retry):
    return client.segment_many(sources, overlay=not args.no_overlay, **job_options(args, on_retry))


def save_segment(result: ImageResult, out_dir: Path) -> dict[str, str]:
    """<stem>_mask.png (indexed: pixel = class id) and <stem>_overlay.png (with a legend) under
    ``out_dir``, mirroring the inputs."""
    from .segmentation import add_legend, mask_png

    mask = out_path(out_dir, result.source, MASK_SUFFIX)
    mask.write_bytes(mask_png(result.answer.mask))
    files = {"mask": str(mask)}
    if result.answer.overlay_png:
        overlay = out_path(out_dir, result.source, "_overlay.png")
        overlay.write_bytes(add_legend(result.answer.overlay_png, result.answer))
        files["overlay"] = str(overlay)
    return files


def start_embed(client: VisionClient, sources, args: argparse.Namespace, on_retry):
    return client.embed_many(sources, **job_options(args, on_retry))


def save_embed(result: ImageResult, out_dir: Path) -> dict[str, str]:
    """<stem>.npy (FP32 [D], numpy.save) under ``out_dir``, mirroring the inputs."""
    import numpy as np

    target = out_path(out_dir, result.source, EMBEDDING_SUFFIX)
    with open(target, "wb") as handle:
        np.save(handle, result.answer.vector)
    return {"npy": str(target)}


CLASSIFY = Task(contract.CLASSIFICATION, "classified", records.CLASSIFICATION, start_classify, default_concurrency=4)
DETECT = Task(
    contract.DETECTION,
    "detected objects in",
    records.DETECTION,
    start_detect,
    save_detect,
    default_concurrency=2,
    out_suffix=DETECTIONS_SUFFIX,
)
SEGMENT = Task(
    contract.SEGMENTATION,
    "segmented",
    records.SEGMENTATION,
    start_segment,
    save_segment,
    default_concurrency=2,
    out_suffix=MASK_SUFFIX,
)
PIPELINE = Task(
    contract.PIPELINE,
    "answered the objects in",
    records.PIPELINE,
    start_pipeline,
    save_detect,
    default_concurrency=2,
    out_suffix=DETECTIONS_SUFFIX,
)
EMBED = Task(
    contract.EMBEDDING,
    "embedded",
    records.EMBEDDING,
    start_embed,
    save_embed,
    default_concurrency=4,
    out_suffix=EMBEDDING_SUFFIX,
)
INSTANCES = Task(
    contract.INSTANCE_SEGMENTATION,
    "found instances in",
    records.INSTANCES,
    start_instances,
    save_instances,
    default_concurrency=2,
    out_suffix=INSTANCES_SUFFIX,
)
KEYPOINTS = Task(
    contract.KEYPOINT_TASK,
    "found keypoints in",
    records.KEYPOINTS,
    start_keypoints,
    save_keypoints,
    default_concurrency=2,
    out_suffix=KEYPOINTS_SUFFIX,
)
TASKS = {task.task: task for task in (CLASSIFY, DETECT, SEGMENT, PIPELINE, EMBED, INSTANCES, KEYPOINTS)}


def print_answers(
    task: str,
    paths: Sequence[str],
    answers: Sequence,
    *,
    encoded: Sequence[bytes] | None = None,
    out: Path | None = None,
) -> None:
    """Each image's answer as the folder jobs print it (text records), its files first written
    under ``out`` (detection: the annotated image, from ``encoded``; segmentation: mask, overlay)."""
    job = TASKS[task]
    writer = records.RecordWriter(sys.stdout, "text", job.kind)
    for index, (path, answer) in enumerate(zip(paths, answers, strict=True)):
        result = ImageResult(as_source(path), answer, data=encoded[index] if encoded is not None else None)
        files = job.save(result, out) if job.save is not None and out is not None else {}
        writer.write(job.kind.record(result, files))
