"""The numbers of a bench report: latency percentiles, Triton statistics deltas, the work bound,
CPU per image per process, the ratios and the targets.

No server, no ONNX Runtime: everything here takes plain numbers and dicts, so it is unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SCHEMA = "triton-vision-bench/1"
CLIENT = "client (the bench process)"
# Triton's per-model statistics stages, in pipeline order (inference_stats keys).
STAGES = ("queue", "compute_input", "compute_infer", "compute_output")
CACHE_STAGES = ("cache_hit", "cache_miss")  # a model with the response cache: its lookups (and inserts)


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
    (batches run), ``<stage>_ns`` / ``<stage>_count`` for every stage in :data:`STAGES`, and the
    response cache's ``cache_hit`` / ``cache_miss`` counts (and ``_ns``). Several versions of one model
    are added together.
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
        for key in CACHE_STAGES:
            flat[key] = flat.get(key, 0) + _int(inference.get(key, {}).get("count"))
            flat[f"{key}_ns"] = flat.get(f"{key}_ns", 0) + _int(inference.get(key, {}).get("ns"))
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
        row["cache_hits"], row["cache_misses"] = d.get("cache_hit", 0), d.get("cache_miss", 0)
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


def process_rows(point: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The point's CPU per image per server process plus the client, each with its share of the total."""
    rows = [dict(row) for row in point.get("server_processes", [])]
    client = point.get("client_cpu_ms_per_image")
    if client is not None:
        rss = point.get("client_rss_mb", math.nan)
        rows.append({"process": CLIENT, "kind": "client", "processes": 1, "cpu_ms_per_image": client, "rss_mb": rss})
    total = sum(r["cpu_ms_per_image"] for r in rows if not math.isnan(r["cpu_ms_per_image"]))
    for row in rows:
        row["share"] = row["cpu_ms_per_image"] / total if total > 0 else math.nan
    return rows


def cpu_per_process(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """CPU per image per process at the lowest concurrency and at the best point (once if they are one)."""
    measured = [p for p in points if p.get("server_processes")]
    if not measured:
        return []
    lowest = min(measured, key=lambda p: p["concurrency"])
    best = best_point(measured)
    chosen = [(lowest, "lowest concurrency")]
    if best is not None and best["concurrency"] != lowest["concurrency"]:
        chosen.append((best, "best point"))
    elif best is not None:
        chosen = [(lowest, "lowest concurrency, best point")]
    return [{"concurrency": p["concurrency"], "at": at, "rows": process_rows(p)} for p, at in chosen]


def summarise(report: Mapping[str, Any]) -> dict[str, Any]:
    """The headline ratios of a report (its ``paths``, ``in_process`` and ``work_bound``)."""
    paths = report["paths"]
    ensemble = paths["ensemble"]["points"]
    baseline = paths.get("baseline", {}).get("points", [])
    best = best_point(ensemble)
    best_baseline = best_point(baseline)
    first = point_at(ensemble, min((p["concurrency"] for p in ensemble), default=1))
    in_process = report.get("in_process", {})
    bound = report.get("work_bound", {}).get("images_per_s")
    best_rate = best["images_per_s"] if best else math.nan
    summary = {
        "ensemble_best_images_per_s": best_rate,
        "ensemble_best_concurrency": best["concurrency"] if best else None,
        "baseline_best_images_per_s": best_baseline["images_per_s"] if best_baseline else math.nan,
        "baseline_best_concurrency": best_baseline["concurrency"] if best_baseline else None,
        "in_process_images_per_s": in_process.get("images_per_s", math.nan),
        "model_alone_images_per_s": in_process.get("model_alone_images_per_s", math.nan),
        "work_bound_images_per_s": bound if bound is not None else math.nan,
        "ratio_to_work_bound": ratio(best_rate, bound),
        "ratio_to_baseline": ratio(best_rate, best_baseline["images_per_s"] if best_baseline else None),
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
    for key, point in (("ensemble", best), ("ensemble_lowest", first), ("baseline", best_baseline)):
        cost = cpu_ms_per_image(point) if point else math.nan
        summary[f"{key}_cpu_ms_per_image"] = cost
        summary[f"{key}_work_efficiency"] = ratio(work_ms, cost)
    summary["ensemble_cpu_to_baseline"] = ratio(
        summary["ensemble_cpu_ms_per_image"], summary["baseline_cpu_ms_per_image"]
    )
    wire = [p.get("request_bytes_per_image") for p in ensemble if p.get("request_bytes_per_image")]
    encoded = report.get("images_mean_bytes")
    summary["wire_bytes_per_image"] = wire[0] if wire else math.nan
    summary["work_cpu_ms_per_image"] = work_ms if work_ms is not None else math.nan
    summary["wire_to_encoded"] = ratio(wire[0] if wire else None, encoded)
    summary["repeats"] = repeats_summary(paths.get("repeats", {}).get("points", []))
    summary["peer"] = peer_summary(ensemble, paths.get("peer", {}).get("points", []))
    summary["cpu_per_process"] = {
        key: cpu_per_process(path["points"]) for key, path in paths.items() if cpu_per_process(path["points"])
    }
    return summary


def _server_cpu(point: Mapping[str, Any] | None) -> float:
    value = point.get("server_cpu_ms_per_image") if point else None
    return math.nan if value is None else float(value)


def peer_summary(ensemble: Sequence[Mapping[str, Any]], peer: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ensemble against the peer (the server a user would write instead), each at its own best point
    and both at the lowest concurrency they share: images/s, server CPU per image, p50; ensemble / peer.
    Empty without peer points."""
    if not peer:
        return {}
    best, best_peer = best_point(ensemble), best_point(peer)
    shared = sorted({p["concurrency"] for p in ensemble} & {p["concurrency"] for p in peer})
    low = shared[0] if shared else None
    first = point_at(ensemble, low) if low is not None else None
    first_peer = point_at(peer, low) if low is not None else None
    found = {
        "ensemble_best_images_per_s": best["images_per_s"] if best else math.nan,
        "ensemble_best_concurrency": best["concurrency"] if best else None,
        "peer_best_images_per_s": best_peer["images_per_s"] if best_peer else math.nan,
        "peer_best_concurrency": best_peer["concurrency"] if best_peer else None,
        "ensemble_server_cpu_ms_per_image": _server_cpu(best),
        "peer_server_cpu_ms_per_image": _server_cpu(best_peer),
        "ensemble_total_cpu_ms_per_image": cpu_ms_per_image(best) if best else math.nan,
        "peer_total_cpu_ms_per_image": cpu_ms_per_image(best_peer) if best_peer else math.nan,
        "lowest_concurrency": low,
        "ensemble_p50_at_lowest_ms": first["p50_ms"] if first else math.nan,
        "peer_p50_at_lowest_ms": first_peer["p50_ms"] if first_peer else math.nan,
        "ensemble_server_cpu_at_lowest_ms": _server_cpu(first),
        "peer_server_cpu_at_lowest_ms": _server_cpu(first_peer),
    }
    found["images_per_s_ratio"] = ratio(found["ensemble_best_images_per_s"], found["peer_best_images_per_s"])
    found["server_cpu_ratio"] = ratio(found["ensemble_server_cpu_ms_per_image"], found["peer_server_cpu_ms_per_image"])
    found["total_cpu_ratio"] = ratio(found["ensemble_total_cpu_ms_per_image"], found["peer_total_cpu_ms_per_image"])
    found["p50_at_lowest_ratio"] = ratio(found["ensemble_p50_at_lowest_ms"], found["peer_p50_at_lowest_ms"])
    return found


def repeats_summary(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per point of the repeats path: images/s, p50 of repeated and of new images, and the cache's
    hits and misses (the steps' statistics rows that have any) against the repeated requests sent."""
    rows = []
    for point in sorted(points, key=lambda p: p["concurrency"]):
        cached = [s for s in point.get("server_steps", []) if s.get("cache_hits") or s.get("cache_misses")]
        hits = sum(s["cache_hits"] for s in cached)
        repeats = point.get("repeat", {}).get("requests", 0)
        rows.append(
            {
                "concurrency": point["concurrency"],
                "images_per_s": point["images_per_s"],
                "repeat_p50_ms": point.get("repeat", {}).get("p50_ms", math.nan),
                "fresh_p50_ms": point.get("fresh", {}).get("p50_ms", math.nan),
                "repeats": repeats,
                "fresh": point.get("fresh", {}).get("requests", 0),
                "cache_hits": hits,
                "cache_misses": sum(s["cache_misses"] for s in cached),
                "cached_models": [s["model"] for s in cached],
                "hits_per_repeat": ratio(hits, repeats),
                "server_cpu_ms_per_image": point.get("server_cpu_ms_per_image", math.nan),
            }
        )
    return rows


def targets(task: str, summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The project's targets for an ensemble of ``task``, each with the measured value and whether it is met."""

    def row(name: str, measured: float, goal: str, met: bool) -> dict[str, Any]:
        return {"target": name, "goal": goal, "measured": measured, "met": bool(met and not math.isnan(measured))}

    rows = []
    if task == "classification":
        best = summary["ensemble_work_efficiency"]
        rows.append(
            row("work efficiency at the best point (work CPU / server + client CPU)", best, ">= 0.95", best >= 0.95)
        )
        low = summary["ensemble_lowest_work_efficiency"]
        rows.append(row("work efficiency at concurrency 1", low, ">= 0.90", low >= 0.90))
        bound = summary["ratio_to_work_bound"]
        rows.append(row("ensemble / work bound (best concurrency)", bound, ">= 0.95", bound >= 0.95))
        above = summary["p50_above_in_process_ms"]
        rows.append(row("p50 at concurrency 1 minus in-process single image (ms)", above, "<= 3", above <= 3.0))
        drop = summary["largest_drop_with_concurrency"]
        rows.append(row("largest fall of images/s as concurrency rises", drop, "<= 0.05", drop <= 0.05))
        cpu = summary["ensemble_cpu_to_baseline"]
        rows.append(row("ensemble / baseline, server + client CPU per image (best points)", cpu, "<= 1.0", cpu <= 1.0))
    else:
        alone = summary["ratio_to_model_alone"]
        rows.append(row("ensemble / model alone (in-process)", alone, ">= 0.95", alone >= 0.95))
    peer = summary.get("peer") or {}
    if peer:
        rate = peer["images_per_s_ratio"]
        rows.append(row("ensemble / peer, best images/s", rate, ">= 1.0", rate >= 1.0))
        server = peer["server_cpu_ratio"]
        rows.append(row("ensemble / peer, server CPU per image (best points)", server, "<= 1.05", server <= 1.05))
        if task != "classification":
            above = summary["p50_above_in_process_ms"]
            rows.append(row("p50 at concurrency 1 minus in-process single image (ms)", above, "<= 3", above <= 3.0))
    wire = summary["wire_to_encoded"]
    rows.append(row("wire bytes per image / encoded file", wire, "<= 1.02", wire <= 1.02))
    repeats = summary.get("repeats") or []
    if repeats:
        lowest = repeats[0]
        hit = lowest["repeat_p50_ms"]
        rows.append(
            row(f"repeated image (cache hit) p50 at concurrency {lowest['concurrency']} (ms)", hit, "< 2", hit < 2.0)
        )
        share = lowest["hits_per_repeat"]
        rows.append(row("cache hits / repeated requests", share, ">= 0.99", share >= 0.99))
    return rows
