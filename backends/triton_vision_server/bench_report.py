"""The pure parts of ``triton-vision bench``: latency percentiles, Triton statistics deltas, the work
bound, the ratios and targets, and the Markdown / PNG renderings of one report.

No server, no ONNX Runtime: everything here takes plain numbers and dicts, so it is unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

SCHEMA = "triton-vision-bench/1"
# Triton's per-model statistics stages, in pipeline order (inference_stats keys).
STAGES = ("queue", "compute_input", "compute_infer", "compute_output")


# -- latencies ------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (NumPy's default)."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in 0..100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 and mean in milliseconds."""
    if not latencies_s:
        return {"p50_ms": math.nan, "p95_ms": math.nan, "p99_ms": math.nan, "mean_ms": math.nan}
    ms = [value * 1e3 for value in latencies_s]
    return {
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "mean_ms": sum(ms) / len(ms),
    }


# -- Triton's statistics API ----------------------------------------------------------------
def _int(value: Any) -> int:
    """Triton's JSON statistics carry 64-bit counters as strings."""
    return int(value) if value not in (None, "") else 0


def model_counters(stats: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """{model name: flat counters} from ``get_inference_statistics(as_json=True)``'s dict.

    Counters: ``requests`` (successful requests), ``inferences`` (images), ``executions``
    (batches run), and ``<stage>_ns`` / ``<stage>_count`` for every stage in :data:`STAGES`.
    Several versions of one model are added together.
    """
    counters: dict[str, dict[str, int]] = {}
    for entry in stats.get("model_stats", []):
        name = entry.get("name", "")
        inference = entry.get("inference_stats", {})
        flat = counters.setdefault(name, {"requests": 0, "inferences": 0, "executions": 0})
        flat["requests"] += _int(inference.get("success", {}).get("count"))
        flat["inferences"] += _int(entry.get("inference_count"))
        flat["executions"] += _int(entry.get("execution_count"))
        for stage in STAGES:
            flat[f"{stage}_ns"] = flat.get(f"{stage}_ns", 0) + _int(inference.get(stage, {}).get("ns"))
            flat[f"{stage}_count"] = flat.get(f"{stage}_count", 0) + _int(inference.get(stage, {}).get("count"))
        flat["success_ns"] = flat.get("success_ns", 0) + _int(inference.get("success", {}).get("ns"))
    return counters


def statistics_delta(
    before: Mapping[str, Any], after: Mapping[str, Any], models: Iterable[str], window_s: float
) -> list[dict[str, Any]]:
    """Per model, what happened between two statistics snapshots, as per-request averages.

    For each model: requests, images, executions, mean batch (images per execution), queue and
    compute (input + infer + output) milliseconds per request, end-to-end milliseconds per
    request (``success``), and ``busy``: the share of the window the model was executing (the
    compute time of an execution is recorded once per request it carries, so it is divided by
    the mean requests per execution).
    """
    first, last = model_counters(before), model_counters(after)
    rows = []
    for name in models:
        a, b = first.get(name, {}), last.get(name, {})
        d = {key: b.get(key, 0) - a.get(key, 0) for key in b}
        requests = d.get("requests", 0)
        executions = d.get("executions", 0)
        row: dict[str, Any] = {
            "model": name,
            "requests": requests,
            "images": d.get("inferences", 0),
            "executions": executions,
            "mean_batch": (d.get("inferences", 0) / executions) if executions else math.nan,
        }
        for stage in STAGES:
            count = d.get(f"{stage}_count", 0)
            row[f"{stage}_ms"] = (d.get(f"{stage}_ns", 0) / count / 1e6) if count else math.nan
        compute_ns = sum(d.get(f"{stage}_ns", 0) for stage in STAGES if stage != "queue")
        row["compute_ms"] = (compute_ns / requests / 1e6) if requests else math.nan
        row["total_ms"] = (d.get("success_ns", 0) / requests / 1e6) if requests else math.nan
        requests_per_execution = (requests / executions) if executions else math.nan
        row["busy"] = (
            compute_ns / requests_per_execution / (window_s * 1e9)
            if executions and window_s > 0 and requests
            else math.nan
        )
        rows.append(row)
    return rows


# -- the work bound -------------------------------------------------------------------------
def work_bound(cores: float, preprocess_cpu_s: float, model_cpu_s: float) -> float:
    """Images per second if every core did nothing but this image's work: cores / CPU-seconds per image."""
    per_image = preprocess_cpu_s + model_cpu_s
    if cores <= 0 or per_image <= 0:
        raise ValueError(f"work bound needs positive cores and CPU time, got {cores} cores, {per_image} s")
    return cores / per_image


def ratio(numerator: float | None, denominator: float | None) -> float:
    if numerator is None or denominator is None or not denominator or math.isnan(denominator):
        return math.nan
    return numerator / denominator


def largest_drop(points: Sequence[Mapping[str, Any]]) -> float:
    """The largest fall of images/s as concurrency rises, as a fraction of the best seen before it."""
    best = 0.0
    drop = 0.0
    for point in sorted(points, key=lambda p: p["concurrency"]):
        rate = point.get("images_per_s") or 0.0
        if best > 0:
            drop = max(drop, (best - rate) / best)
        best = max(best, rate)
    return drop


def best_point(points: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    valid = [p for p in points if p.get("images_per_s")]
    return max(valid, key=lambda p: p["images_per_s"]) if valid else None


def point_at(points: Sequence[Mapping[str, Any]], concurrency: int) -> Mapping[str, Any] | None:
    for point in points:
        if point["concurrency"] == concurrency:
            return point
    return None


def cpu_ms_per_image(point: Mapping[str, Any]) -> float:
    """Server processes' plus the client's CPU milliseconds per image at one point (NaN if unknown)."""
    server = point.get("server_cpu_ms_per_image")
    client = point.get("client_cpu_ms_per_image")
    if server is None or client is None or math.isnan(server) or math.isnan(client):
        return math.nan
    return server + client


def summarise(report: Mapping[str, Any]) -> dict[str, Any]:
    """The headline ratios of a report (its ``paths``, ``in_process`` and ``work_bound``)."""
    paths = report["paths"]
    ensemble = paths["ensemble"]["points"]
    seed = paths.get("seed", {}).get("points", [])
    best = best_point(ensemble)
    best_seed = best_point(seed)
    first = point_at(ensemble, min((p["concurrency"] for p in ensemble), default=1))
    in_process = report.get("in_process", {})
    bound = report.get("work_bound", {}).get("images_per_s")
    best_rate = best["images_per_s"] if best else math.nan
    summary = {
        "ensemble_best_images_per_s": best_rate,
        "ensemble_best_concurrency": best["concurrency"] if best else None,
        "seed_best_images_per_s": best_seed["images_per_s"] if best_seed else math.nan,
        "seed_best_concurrency": best_seed["concurrency"] if best_seed else None,
        "in_process_images_per_s": in_process.get("images_per_s", math.nan),
        "model_alone_images_per_s": in_process.get("model_alone_images_per_s", math.nan),
        "work_bound_images_per_s": bound if bound is not None else math.nan,
        "ratio_to_work_bound": ratio(best_rate, bound),
        "ratio_to_seed": ratio(best_rate, best_seed["images_per_s"] if best_seed else None),
        "ratio_to_in_process": ratio(best_rate, in_process.get("images_per_s")),
        "ratio_to_model_alone": ratio(best_rate, in_process.get("model_alone_images_per_s")),
        "p50_at_lowest_concurrency_ms": first["p50_ms"] if first else math.nan,
        "in_process_single_image_ms": in_process.get("single_image_ms", math.nan),
        "largest_drop_with_concurrency": largest_drop(ensemble),
    }
    summary["p50_above_in_process_ms"] = summary["p50_at_lowest_concurrency_ms"] - summary["in_process_single_image_ms"]
    # CPU per image (server processes + client), a figure other load on the machine barely moves.
    work_ms = None
    if report.get("work_bound"):
        work_ms = report["work_bound"]["preprocess_cpu_ms"] + report["work_bound"]["model_cpu_ms"]
    for key, name in (("ensemble", ensemble), ("seed", seed)):
        costs = [cpu_ms_per_image(p) for p in name if not math.isnan(cpu_ms_per_image(p))]
        cheapest = min(costs) if costs else math.nan
        summary[f"{key}_cpu_ms_per_image"] = cheapest
        summary[f"{key}_work_efficiency"] = ratio(work_ms, cheapest)
    wire = [p.get("request_bytes_per_image") for p in ensemble if p.get("request_bytes_per_image")]
    encoded = report.get("images_mean_bytes")
    summary["wire_bytes_per_image"] = wire[0] if wire else math.nan
    summary["work_cpu_ms_per_image"] = work_ms if work_ms is not None else math.nan
    summary["wire_to_encoded"] = ratio(wire[0] if wire else None, encoded)
    return summary


def targets(ensemble: str, summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""

    def row(name: str, measured: float, goal: str, met: bool) -> dict[str, Any]:
        return {"target": name, "goal": goal, "measured": measured, "met": bool(met and not math.isnan(measured))}

    rows = []
    if ensemble == "classification":
        bound = summary["ratio_to_work_bound"]
        rows.append(row("ensemble / work bound (best concurrency)", bound, ">= 0.95", bound >= 0.95))
        seed = summary["ratio_to_seed"]
        rows.append(row("ensemble / seed's path (best of each)", seed, ">= 1.2", seed >= 1.2))
        above = summary["p50_above_in_process_ms"]
        rows.append(row("p50 at concurrency 1 minus in-process single image (ms)", above, "<= 3", above <= 3.0))
        drop = summary["largest_drop_with_concurrency"]
        rows.append(row("largest fall of images/s as concurrency rises", drop, "<= 0.05", drop <= 0.05))
    else:
        alone = summary["ratio_to_model_alone"]
        rows.append(row("ensemble / model alone (in-process)", alone, ">= 0.95", alone >= 0.95))
    wire = summary["wire_to_encoded"]
    rows.append(row("wire bytes per image / encoded file", wire, "<= 1.02", wire <= 1.02))
    return rows


# -- rendering ------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def _bytes(value: Any) -> str:
    if not value or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value / 1024:.1f} KiB"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: machine, headline table, targets, sweeps, per-step breakdown."""
    machine = report["machine"]
    summary = report["summary"]
    ensemble = report["ensemble"]
    lines = [
        f"# `triton-vision bench --ensemble {ensemble}`",
        "",
        f"- machine: {machine['cores']} cores, {machine['cpu_model']}; {machine.get('memory', '')}".rstrip("; "),
        f"- load (/proc/loadavg) before: `{machine['loadavg_before']}`, after: `{machine['loadavg_after']}`"
        f" (other processes on the machine: {machine.get('note', 'none noted')})",
        f"- model `{report['model']}`: {report.get('model_source', '-')}",
        f"- server: {report['server']['url']} ({report['server']['how']}); run {report['started']}, "
        f"{_fmt(report['elapsed_s'], 0)} s",
        f"- images ({len(report['images'])}, mean {_bytes(report['images_mean_bytes'])}): "
        + ", ".join(f"{i['name']} {i['width']}x{i['height']} {_bytes(i['bytes'])}" for i in report["images"]),
        f"- served configs: {report.get('served_line', '-')}",
        f"- {_fmt(report['settings']['duration_s'], 1)} s per point after {_fmt(report['settings']['warmup_s'], 1)} s"
        " warm-up; one image per request",
        "",
        "## Summary",
        "",
        "| path, same machine, one run | images/s (best concurrency) | p50 at lowest concurrency |",
        "|---|---|---|",
    ]
    bound = report.get("work_bound", {})
    if bound:
        lines.append(
            f"| work bound: {bound['cores']} cores / ({_fmt(bound['preprocess_cpu_ms'])} ms preprocessing + "
            f"{_fmt(bound['model_cpu_ms'])} ms model CPU per image at batch {bound['batch']}) "
            f"| {_fmt(bound['images_per_s'])} | |"
        )
    in_process = report.get("in_process", {})
    if in_process:
        lines.append(
            f"| in-process: OpenCV preprocessing + ONNX Runtime ({in_process['threads']}), batch "
            f"{in_process['batch']} / batch 1 | {_fmt(in_process['images_per_s'])} "
            f"| {_fmt(in_process['single_image_ms'])} ms |"
        )
        lines.append(
            f"| model alone in-process (preprocessed tensors), batch {in_process['batch']} "
            f"| {_fmt(in_process.get('model_alone_images_per_s'))} | {_fmt(in_process.get('model_alone_ms'))} ms |"
        )
    for key, path in report["paths"].items():
        best = best_point(path["points"])
        first = min(path["points"], key=lambda p: p["concurrency"]) if path["points"] else None
        label = path["label"]
        if key == "ensemble":
            label = f"**{label}**"
        lines.append(
            f"| {label} | {_fmt(best['images_per_s']) + ' (c=' + str(best['concurrency']) + ')' if best else '-'} | "
            f"{_fmt(first['p50_ms']) + ' ms' if first else '-'} |"
        )
    lines += [
        "",
        "Ratios (best ensemble point): "
        f"{_fmt(summary['ratio_to_work_bound'], 2)}x the work bound, "
        f"{_fmt(summary['ratio_to_seed'], 2)}x the seed's path, "
        f"{_fmt(summary['ratio_to_in_process'], 2)}x in-process, "
        f"{_fmt(summary['ratio_to_model_alone'], 2)}x the model alone; "
        f"wire bytes per image {_fmt(summary['wire_to_encoded'], 3)}x the encoded file.",
        "",
        "CPU per image, server processes + client, at the cheapest point (other load on the machine barely"
        f" moves it): the ensemble {_fmt(summary.get('ensemble_cpu_ms_per_image'))} ms, the seed's path"
        f" {_fmt(summary.get('seed_cpu_ms_per_image'))} ms, against"
        f" {_fmt(summary.get('work_cpu_ms_per_image'))} ms of preprocessing + model work: work efficiency"
        f" {_fmt(summary.get('ensemble_work_efficiency'), 2)} (ensemble),"
        f" {_fmt(summary.get('seed_work_efficiency'), 2)} (seed's path).",
        "",
        "## Targets",
        "",
        "| target | goal | measured | met |",
        "|---|---|---|---|",
    ]
    for row in report["targets"]:
        met = "yes" if row["met"] else "NO"
        lines.append(f"| {row['target']} | {row['goal']} | {_fmt(row['measured'], 3)} | {met} |")
    for path in report["paths"].values():
        lines += [
            "",
            f"## {path['label']}",
            "",
            f"Source: {path['source']}.",
            "",
            "| concurrency | images/s | p50 ms | p95 ms | p99 ms | request bytes/image | response bytes/image "
            "| client CPU ms/image | server CPU ms/image | errors |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in sorted(path["points"], key=lambda p: p["concurrency"]):
            lines.append(
                f"| {p['concurrency']} | {_fmt(p['images_per_s'])} | {_fmt(p['p50_ms'])} | {_fmt(p['p95_ms'])} "
                f"| {_fmt(p['p99_ms'])} | {_fmt(p.get('request_bytes_per_image'), 0)} "
                f"| {_fmt(p.get('response_bytes_per_image'), 0)} | {_fmt(p.get('client_cpu_ms_per_image'))} "
                f"| {_fmt(p.get('server_cpu_ms_per_image'))} | {p.get('errors', 0)} |"
            )
        if path.get("error"):
            lines += ["", f"Error: {path['error']}"]
    steps = report["paths"]["ensemble"]["points"]
    if steps and any(p.get("server_steps") for p in steps):
        lines += [
            "",
            "## Where the time goes: Triton's statistics per composing model",
            "",
            "Deltas of `get_inference_statistics` over each measurement window; milliseconds per request"
            " (queue = waiting for an instance, including the dynamic batcher's delay; compute = input +"
            " infer + output); busy = share of the window the model was executing.",
            "",
            "| concurrency | model | requests | mean batch | queue ms | compute ms | of which infer ms | busy |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in sorted(steps, key=lambda p: p["concurrency"]):
            for s in p.get("server_steps", []):
                lines.append(
                    f"| {p['concurrency']} | {s['model']} | {s['requests']} | {_fmt(s['mean_batch'], 2)} "
                    f"| {_fmt(s['queue_ms'], 2)} | {_fmt(s['compute_ms'], 2)} | {_fmt(s['compute_infer_ms'], 2)} "
                    f"| {_fmt(s['busy'], 2)} |"
                )
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def render_plot(report: Mapping[str, Any], path: Path) -> Path:
    """Throughput vs concurrency, a line per path, the in-process and work-bound levels dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for key, served in report["paths"].items():
        points = sorted(served["points"], key=lambda p: p["concurrency"])
        if not points:
            continue
        axis.plot(
            [p["concurrency"] for p in points],
            [p["images_per_s"] for p in points],
            marker="o" if key != "ensemble_perf_analyzer" else "s",
            linewidth=2.2 if key == "ensemble" else 1.4,
            label=served["label"],
        )
    levels = [
        ("work bound", report.get("work_bound", {}).get("images_per_s"), "black"),
        ("in-process", report.get("in_process", {}).get("images_per_s"), "grey"),
        ("model alone", report.get("in_process", {}).get("model_alone_images_per_s"), "silver"),
    ]
    for label, level, colour in levels:
        if level and not math.isnan(level):
            axis.axhline(level, linestyle="--", color=colour, linewidth=1, label=f"{label} ({level:.1f})")
    axis.set_xscale("log", base=2)
    concurrencies = sorted({p["concurrency"] for s in report["paths"].values() for p in s["points"]})
    if concurrencies:
        axis.set_xticks(concurrencies, [str(c) for c in concurrencies])
    axis.set_xlabel("concurrent requests (one image each)")
    axis.set_ylabel("images/s")
    axis.set_ylim(bottom=0)
    machine = report["machine"]
    axis.set_title(f"{report['ensemble']}: {machine['cores']} cores, {machine['cpu_model']}", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
