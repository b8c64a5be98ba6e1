"""``triton-vision bench``'s arguments and its command: usage errors are one line and exit 2,
failures of the run one line and exit 1 (the command table's)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from triton_vision_bench.messages import BenchUsageError
from triton_vision_bench.options import BenchOptions, parse_cache_size, parse_concurrency
from triton_vision_bench.render import goal_word, peer_lines


def options_from(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(
        ensemble=args.ensemble,
        url=args.url,
        model_repository=args.model_repository,
        images=tuple(args.images),
        photos=args.photos,
        max_images=args.max_images,
        concurrency=parse_concurrency(args.concurrency) if args.concurrency else None,
        baseline_concurrency=parse_concurrency(args.baseline_concurrency, "--baseline-concurrency")
        if args.baseline_concurrency
        else None,
        duration_s=args.duration,
        warmup_s=args.warmup,
        max_point_s=max(args.duration, args.max_point),
        perf_analyzer=not args.no_perf_analyzer,
        perf_analyzer_concurrency=parse_concurrency(args.perf_analyzer_concurrency, "--perf-analyzer-concurrency"),
        repeats=not args.no_repeats,
        cache_size=parse_cache_size(args.cache_size),
        repeat_concurrency=parse_concurrency(args.repeat_concurrency, "--repeat-concurrency")
        if args.repeat_concurrency
        else None,
        separate_steps=args.separate_steps,
        peer=not args.no_peer,
        peer_workers=args.peer_workers,
        peer_device=args.peer_device,
        compare_onnx=args.compare_onnx,
        out=args.out,
        note=args.note,
    ).check()


def _is_pipeline(repository: Path, ensemble: str) -> bool:
    from triton_vision_bench.profiles import load_repository
    from triton_vision_contract import PIPELINE

    found = load_repository(repository)
    return ensemble in found and found[ensemble].task == PIPELINE


def _run_pipeline(args: argparse.Namespace) -> int:
    """A pipeline ensemble: against the client-side way (detect, crop, re-encode, classify)."""
    from triton_vision_bench.images import bench_images
    from triton_vision_bench.pipeline import run_pipeline_bench

    photos = [image.data for image in bench_images(args.images, args.max_images, args.photos)]
    concurrency = parse_concurrency(args.concurrency) if args.concurrency else (2,)
    written = run_pipeline_bench(
        args.model_repository,
        args.ensemble,
        args.url,
        photos,
        args.out,
        images=args.pipeline_images,
        rounds=args.pipeline_rounds,
        concurrency=max(concurrency),
    )
    for path in written:
        print(f"wrote {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    from triton_vision_bench.render import write_report
    from triton_vision_bench.run import run_bench

    try:
        if _is_pipeline(args.model_repository, args.ensemble):
            return _run_pipeline(args)
        options = options_from(args)
        report = run_bench(options)
    except BenchUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    written = write_report(report, options.out)
    summary = report["summary"]
    print(
        f"{report['ensemble']}: ensemble {summary['ensemble_best_images_per_s']:.2f} images/s "
        f"(c={summary['ensemble_best_concurrency']}), baseline {summary['baseline_best_images_per_s']:.2f}, "
        f"in-process {summary['in_process_images_per_s']:.2f}, work bound {summary['work_bound_images_per_s']:.2f}"
    )
    for line in peer_lines(summary.get("peer") or {}):
        print(f"  {line}")
    for row in report["targets"]:
        reached = f"reached: {goal_word(row['met'])}"
        print(f"  {row['target']}: {row['measured']:.3f} (goal {row['goal']}; {reached})")
    for path in written:
        print(f"wrote {path}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Measure an ensemble on the same real photos: served (a concurrency sweep), the client preprocessing "
        "and sending tensors to the bare model, the HTTP server a user would write instead (the peer), "
        "in-process, and the work bound; write a "
        "Markdown report, its JSON and a PNG plot."
    )
    default = BenchOptions()
    p.add_argument(
        "--ensemble",
        default=default.ensemble,
        help="any ensemble of the repository whose task the bench knows (classification, detection, segmentation; "
        "a pipeline is measured against the client-side way: detect, crop, re-encode, classify)",
    )
    p.add_argument(
        "--pipeline-images", type=int, default=36, help="a pipeline: photos per round and way (default %(default)s)"
    )
    p.add_argument(
        "--pipeline-rounds", type=int, default=3, help="a pipeline: alternating rounds (default %(default)s)"
    )
    p.add_argument("--url", default=None, help="gRPC address of a running server (default: start one locally)")
    p.add_argument("--model-repository", type=Path, default=default.model_repository)
    p.add_argument(
        "--images", nargs="*", type=Path, default=[], help="image files, sent as they are (default: see --photos)"
    )
    p.add_argument(
        "--photos",
        type=Path,
        default=None,
        metavar="DIR",
        help="a folder of JPEG photos, each sent as its JPEG and a 640 px PNG (default: scikit-image's photos)",
    )
    p.add_argument("--max-images", type=int, default=default.max_images)
    p.add_argument("--concurrency", default=None, help="ensemble sweep, e.g. 1,2,4,8,16 (default per task)")
    p.add_argument(
        "--baseline-concurrency",
        default=None,
        help="the client-side-preprocessing baseline's sweep (default per task)",
    )
    p.add_argument(
        "--duration", type=float, default=default.duration_s, help="seconds measured per point (default %(default)s)"
    )
    p.add_argument(
        "--warmup", type=float, default=default.warmup_s, help="seconds of warm-up per point (default %(default)s)"
    )
    p.add_argument("--max-point", type=float, default=default.max_point_s, help="at most this many seconds per point")
    p.add_argument("--no-perf-analyzer", action="store_true", help="skip the perf_analyzer points")
    p.add_argument("--perf-analyzer-concurrency", default=",".join(map(str, default.perf_analyzer_concurrency)))
    p.add_argument(
        "--no-repeats",
        action="store_true",
        help="skip the repeated-image workload (half the requests repeat an image: the response cache)",
    )
    p.add_argument(
        "--cache-size",
        default="256M",
        help="response cache of the repeated-image workload's server (default %(default)s; serve --cache-size)",
    )
    p.add_argument(
        "--repeat-concurrency", default=None, help="its concurrency levels (default: 1 and the sweep's highest)"
    )
    p.add_argument(
        "--separate-steps",
        action="store_true",
        help="the bench's server runs each step of the ensemble as its own model process (serve "
        "--separate-steps: per-step statistics; default: fused, as serve runs it)",
    )
    p.add_argument(
        "--no-peer",
        action="store_true",
        help="skip the peer: the HTTP server a user would write instead (uvicorn workers, OpenCV, ONNX Runtime)",
    )
    p.add_argument(
        "--peer-workers", type=int, default=default.peer_workers, help="the peer's processes (default %(default)s)"
    )
    p.add_argument(
        "--peer-device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="the peer's ONNX Runtime device (cuda: a GPU machine's onnxruntime-gpu; default %(default)s)",
    )
    p.add_argument(
        "--compare-onnx",
        type=Path,
        default=None,
        metavar="FILE",
        help="detection: another detector ONNX file of the same tensor signature, compared in-process on the same "
        "photos (ms per image, box agreement)",
    )
    p.add_argument("--out", type=Path, default=default.out)
    p.add_argument("--note", default="", help="a remark stored in the report (e.g. what else ran)")
