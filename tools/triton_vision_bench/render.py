"""The renderings of a bench report: Markdown, the throughput-vs-concurrency PNG, and the three
files (``bench-<ensemble>.md``, ``.json``, ``.png``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from triton_vision_bench.report import best_point
from triton_vision_serving.server_config import describe_size


def goal_word(met: bool) -> str:
    """How a goal's row reads, in the report and on the terminal: a goal not reached is a measurement
    of this machine, not an error of the set-up."""
    return "yes" if met else "not here"


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
        f"{_fmt(summary['ratio_to_baseline'], 2)}x the client-side-preprocessing baseline, "
        f"{_fmt(summary['ratio_to_in_process'], 2)}x in-process, "
        f"{_fmt(summary['ratio_to_model_alone'], 2)}x the model alone; "
        f"wire bytes per image {_fmt(summary['wire_to_encoded'], 3)}x the encoded file.",
        "",
        "CPU per image, server processes + client (other load on the machine barely moves it), against"
        f" {_fmt(summary.get('work_cpu_ms_per_image'))} ms of preprocessing + model work: the ensemble"
        f" {_fmt(summary.get('ensemble_cpu_ms_per_image'))} ms at its best point (work efficiency"
        f" {_fmt(summary.get('ensemble_work_efficiency'), 2)}) and"
        f" {_fmt(summary.get('ensemble_lowest_cpu_ms_per_image'))} ms at the lowest concurrency"
        f" ({_fmt(summary.get('ensemble_lowest_work_efficiency'), 2)}); the baseline"
        f" {_fmt(summary.get('baseline_cpu_ms_per_image'))} ms at its best point"
        f" ({_fmt(summary.get('baseline_work_efficiency'), 2)}).",
        "",
        *_peer_section(report)[1:],
        "",
        "## Against the project's goals",
        "",
        "The project's own goals for an ensemble of this task (docs/performance.md says where each comes",
        "from); a goal not reached here is a measurement of this machine, not an error of the set-up.",
        "",
        "| goal | for | measured | reached |",
        "|---|---|---|---|",
    ]
    for row in report["targets"]:
        reached = goal_word(row["met"])
        lines.append(f"| {row['target']} | {row['goal']} | {_fmt(row['measured'], 3)} | {reached} |")
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
            lines += [_step_line(p["concurrency"], s) for s in p.get("server_steps", [])]
    lines += _repeats_lines(report)
    lines += _process_lines(report)
    lines += _detector_lines(report)
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def peer_lines(peer: Mapping[str, Any]) -> list[str]:
    """The ensemble against the peer in three plain sentences (empty without a peer)."""
    if not peer:
        return []
    low = peer["lowest_concurrency"]
    return [
        f"best images/s: the ensemble {_fmt(peer['ensemble_best_images_per_s'])}"
        f" (c={peer['ensemble_best_concurrency']}),"
        f" the peer {_fmt(peer['peer_best_images_per_s'])} (c={peer['peer_best_concurrency']}):"
        f" ensemble / peer = {_fmt(peer['images_per_s_ratio'], 2)}x",
        f"server CPU per image at those points: the ensemble {_fmt(peer['ensemble_server_cpu_ms_per_image'])} ms,"
        f" the peer {_fmt(peer['peer_server_cpu_ms_per_image'])} ms: ensemble / peer ="
        f" {_fmt(peer['server_cpu_ratio'], 2)}x (with the client: {_fmt(peer['total_cpu_ratio'], 2)}x)",
        f"p50 at concurrency {low}: the ensemble {_fmt(peer['ensemble_p50_at_lowest_ms'])} ms, the peer"
        f" {_fmt(peer['peer_p50_at_lowest_ms'])} ms: ensemble / peer = {_fmt(peer['p50_at_lowest_ratio'], 2)}x",
    ]


def _peer_section(report: Mapping[str, Any]) -> list[str]:
    peer = report["summary"].get("peer") or {}
    if not peer:
        return []
    summary = report["summary"]
    lines = [
        "",
        "## Against the server a user would write instead (the peer)",
        "",
        f"{report['paths']['peer']['label']}: the same photos, the same ONNX file, the same concurrencies, in"
        " the same run (its own sweep below).",
        "",
    ]
    lines += [f"- {line}" for line in peer_lines(peer)]
    lines.append(
        f"- p50 at concurrency {peer['lowest_concurrency']} against in-process single image"
        f" ({_fmt(summary['in_process_single_image_ms'])} ms): the ensemble"
        f" +{_fmt(summary['p50_above_in_process_ms'])} ms (goal: +3 ms), the peer"
        f" +{_fmt(peer['peer_p50_at_lowest_ms'] - summary['in_process_single_image_ms'])} ms"
    )
    return lines


def _step_line(concurrency: int, s: Mapping[str, Any]) -> str:
    return (
        f"| {concurrency} | {s['model']} | {s['requests']} | {_fmt(s['mean_batch'], 2)} "
        f"| {_fmt(s['queue_ms'], 2)} | {_fmt(s['compute_ms'], 2)} | {_fmt(s['compute_infer_ms'], 2)} "
        f"| {_fmt(s['busy'], 2)} |"
    )


def _repeats_lines(report: Mapping[str, Any]) -> list[str]:
    """The repeated-image workload: hits against repeats, their latency against new images'."""
    rows = report["summary"].get("repeats") or []
    if not rows:
        return []
    size = report["server"].get("cache_size")
    lines = [
        "",
        "## Repeated images: the response cache",
        "",
        f"Every other request repeats the image of the latest answered one; the server "
        f"{'had a response cache of ' + describe_size(size) if size else 'was given with --url, its cache as it is'}."
        " The cache keeps each ensemble's image part (`NAME_infer`: guard, preprocessing, model), whose"
        " answer depends on the image's bytes alone; the post-processing runs for every request with its"
        " own parameters. Hits and misses: Triton's statistics of the cached model over the window.",
        "",
        "| concurrency | images/s | repeated: requests, p50 ms | new: requests, p50 ms | cache hits / misses "
        "| hits per repeated request | server CPU ms/image |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['concurrency']} | {_fmt(r['images_per_s'])} | {r['repeats']}, {_fmt(r['repeat_p50_ms'], 2)} "
            f"| {r['fresh']}, {_fmt(r['fresh_p50_ms'], 1)} | {r['cache_hits']} / {r['cache_misses']} "
            f"| {_fmt(r['hits_per_repeat'], 2)} | {_fmt(r['server_cpu_ms_per_image'])} |"
        )
    return lines


def _detector_lines(report: Mapping[str, Any]) -> list[str]:
    """The two detectors compared in-process (``--compare-onnx``)."""
    found = report.get("detectors")
    if not found:
        return []
    ms, kinds, totals = found["ms_per_image"], found["kinds"], found["totals"]
    caveat = (
        ""
        if found["meaningful"]
        else " At least one is a random-weight stand-in: its boxes are noise, and so is this agreement; the"
        " speeds are the architectures' own."
    )
    lines = [
        "",
        "## Two detectors on the same photos (in-process)",
        "",
        f"The served `{found['models']['served']}` ({kinds['served']}) and `{found['models']['other']}`"
        f" ({kinds['other']}), one image at a time on the reference preprocessing, ONNX Runtime's default"
        f" threads: {_fmt(ms['served'], 0)} and {_fmt(ms['other'], 0)} ms per image. Boxes scoring at least"
        f" {found['score_threshold']:g}; two agree with the same label and IoU >= {found['match_iou']:g}:"
        f" {totals['agree']} of {totals['served']} and {totals['other']} (agreement, matched / union:"
        f" {_fmt(found['agreement'], 2)}).{caveat}",
        "",
        "| image | served: boxes | other: boxes | agree |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['image']} | {r['served']} | {r['other']} | {r['agree']} |" for r in found["per_image"]]
    return lines


def _process_lines(report: Mapping[str, Any]) -> list[str]:
    """The CPU per image per process tables, one per path (none when the server was not a local process)."""
    tables = report["summary"].get("cpu_per_process") or {}
    if not tables:
        return []
    lines = [
        "",
        "## Where the cycles go: CPU per image per process",
        "",
        "CPU milliseconds per image over the measurement window (/proc: user + system time of `tritonserver`,"
        " of each composing model's backend stub, and of the bench process as the client), at the lowest"
        " concurrency and at the best point; share = of all the processes listed for that point; resident"
        " memory at the window's end.",
    ]
    for key, entries in tables.items():
        lines += [
            "",
            f"{report['paths'][key]['label']}:",
            "",
            "| concurrency | process | processes | CPU ms/image | share | RSS MB |",
            "|---|---|---|---|---|---|",
        ]
        for entry in entries:
            for row in entry["rows"]:
                share = "-" if math.isnan(row["share"]) else f"{row['share']:.0%}"
                lines.append(
                    f"| {entry['concurrency']} ({entry['at']}) | {row['process']} | {row['processes']} "
                    f"| {_fmt(row['cpu_ms_per_image'])} | {share} | {_fmt(row['rss_mb'], 0)} |"
                )
    return lines


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
    # Below the axes, not over them: the curves and the levels stay visible whatever their values.
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    """``out/bench-<ensemble>.md``, ``.json`` and ``.png``; the Markdown shows the PNG above its summary."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"bench-{report['ensemble']}"
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(report, indent=2, default=_json_default, allow_nan=True) + "\n")
    md_path = stem.with_suffix(".md")
    md_text = render_markdown(report)
    png_path = stem.with_suffix(".png")
    render_plot(report, png_path)
    figure = f"\n![throughput vs concurrency]({png_path.name})\n\n## Summary"
    md_path.write_text(md_text.replace("\n## Summary", figure, 1))
    return [md_path, json_path, png_path]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
