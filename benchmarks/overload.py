"""The overload figures of docs/performance.md, measured through a real `triton-vision serve`
(not a test: it asserts nothing; the bounded versions are tests/integration/test_overload.py).

    .venv/bin/python -m benchmarks.overload [--clients 96] [--seconds 20] [--flood 4]
        [--serve-arg=--max-queue-size=0 ...] [--out out/overload-report.json]

- the storm: CLIENTS concurrent requests of one photo through the classification ensemble (the
  ResNet-18 stand-in), each sent again as soon as it is answered or refused, for SECONDS; a
  `triton-vision probe` of the ensemble every 0.5 s; the latency of lone requests before and
  right after; an *ordinary* probe (the same photo, no priority, as any client) every 0.5 s beside
  the priority probe; per composing model, the requests it queued and their mean wait (Triton's
  statistics), which says in which steps a request waited;
- the flood: FLOOD concurrent gRPC requests of 32 rows x 8 MB (a JPEG header, then non-zero
  padding: no end marker) beside a client classifying the photo every 0.1 s; the server's memory
  (PSS of tritonserver and its model processes) before, at peak and 10 s after; lone latency after;
- memory: the server's PSS before the storm, and 10 s and 20 s after the flood against it, with
  each process's share, which says what holds memory afterwards.

Each figure is printed with the load average (/proc/loadavg) beside it: other jobs share the cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

import triton_vision_contract as contract
from tests.conftest import ROOT, SHARED, ensemble_repository
from tests.integration.test_overload import flood_rows, image_input
from tests.support.processes import server_pss_by_process, server_pss_mb
from tests.support.serve import serving
from triton_vision_client.probe import probe

DEADLINE_S = 60.0


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], 3)


def lone(url: str, photo: bytes, count: int, every: float = 0.25) -> list[float]:
    client = grpcclient.InferenceServerClient(url)
    found = []
    for _ in range(count):
        started = time.monotonic()
        client.infer(contract.CLASSIFICATION, [image_input(grpcclient, np.frombuffer(photo, np.uint8)[None])])
        found.append(round(time.monotonic() - started, 3))
        time.sleep(every)
    client.close()
    return found


def queue_figures(url: str) -> dict[str, tuple[int, int, int, int]]:
    """Per model, from Triton's statistics: requests that left its queue and the nanoseconds they waited
    there; requests answered and the nanoseconds from their arrival to their answer (an ensemble's:
    the whole request inside the server)."""
    client = grpcclient.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(as_json=True)["model_stats"]
    finally:
        client.close()
    return {
        m["name"]: (
            int(m["inference_stats"]["queue"].get("count", 0)),
            int(m["inference_stats"]["queue"].get("ns", 0)),
            int(m["inference_stats"]["success"].get("count", 0)),
            int(m["inference_stats"]["success"].get("ns", 0)),
        )
        for m in stats
        if "queue" in m.get("inference_stats", {})
    }


def queue_waits(
    before: dict[str, tuple[int, int, int, int]], after: dict[str, tuple[int, int, int, int]]
) -> dict[str, dict]:
    found = {}
    for name, (count, ns, answered, answered_ns) in after.items():
        count_0, ns_0, answered_0, answered_ns_0 = before.get(name, (0, 0, 0, 0))
        figures: dict[str, float] = {}
        if count > count_0:
            figures.update(queued=count - count_0, mean_wait_s=round((ns - ns_0) / (count - count_0) / 1e9, 3))
        if answered > answered_0:
            mean = (answered_ns - answered_ns_0) / (answered - answered_0) / 1e9
            figures.update(answered=answered - answered_0, mean_in_server_s=round(mean, 3))
        if figures:
            found[name] = figures
    return found


def storm(url: str, photo: bytes, clients: int, seconds: float) -> dict:
    client = grpcclient.InferenceServerClient(url)
    row = np.frombuffer(photo, np.uint8)[None]
    answered: list[float] = []
    refused: list[float] = []
    other: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    finished = threading.Semaphore(0)

    def send() -> None:
        started = time.monotonic()

        def done(result, error) -> None:
            took = time.monotonic() - started
            with lock:
                if error is None:
                    answered.append(took)
                elif contract.is_busy(error.message()):
                    refused.append(took)
                else:
                    other.append(f"{error.status()} {error.message()}"[:160])
            if time.monotonic() < stop_at:
                send()
            else:
                finished.release()

        client.async_infer(contract.CLASSIFICATION, [image_input(grpcclient, row)], done, client_timeout=DEADLINE_S)

    probes: list[tuple[float, bool, str]] = []
    stop = threading.Event()

    def prober() -> None:
        while not stop.is_set():
            started = time.monotonic()
            (result,) = probe(url, ensembles=[contract.CLASSIFICATION], timeout_s=DEADLINE_S)
            probes.append((time.monotonic() - started, result.ok, result.detail[:80]))
            stop.wait(max(0.0, 0.5 - (time.monotonic() - started)))

    ordinary: list[tuple[float, str]] = []  # (seconds, "ok" / "busy" / the error)

    def ordinary_prober() -> None:
        own = grpcclient.InferenceServerClient(url)
        while not stop.is_set():
            started = time.monotonic()
            try:
                own.infer(contract.CLASSIFICATION, [image_input(grpcclient, row)], client_timeout=DEADLINE_S)
                outcome = "ok"
            except Exception as exc:  # noqa: BLE001 - counted and shown
                outcome = "busy" if contract.is_busy(str(exc)) else str(exc)[:160]
            ordinary.append((time.monotonic() - started, outcome))
            stop.wait(max(0.0, 0.5 - (time.monotonic() - started)))
        own.close()

    watchers = [threading.Thread(target=prober), threading.Thread(target=ordinary_prober)]
    figures: dict = {"load_before": load()}
    queued_before = queue_figures(url)
    for watcher in watchers:
        watcher.start()
    for _ in range(clients):
        send()
    for _ in range(clients):
        finished.acquire(timeout=seconds + DEADLINE_S + 30)
    stop.set()
    for watcher in watchers:
        watcher.join()
    client.close()
    waits = queue_waits(queued_before, queue_figures(url))
    after = lone(url, photo, 20)
    probe_s = [seconds for seconds, _, _ in probes]
    ordinary_ok = [seconds for seconds, outcome in ordinary if outcome == "ok"]
    ordinary_busy = [seconds for seconds, outcome in ordinary if outcome == "busy"]
    figures.update(
        {
            "load_after": load(),
            "clients": clients,
            "seconds": seconds,
            "answered": len(answered),
            "answered_p50_s": percentile(answered, 50),
            "answered_p95_s": percentile(answered, 95),
            "answered_p99_s": percentile(answered, 99),
            "refused": len(refused),
            "refused_p50_s": percentile(refused, 50),
            "refused_p95_s": percentile(refused, 95),
            "other_errors": other[:5],
            "deadline_hits": sum("DEADLINE" in message for message in other),
            "probes": len(probes),
            "probes_failed": [p for p in probes if not p[1]][:5],
            "probes_busy": sum(detail.startswith("busy") for _, _, detail in probes),
            "probe_p50_s": percentile(probe_s, 50),
            "probe_p95_s": percentile(probe_s, 95),
            "probe_max_s": percentile(probe_s, 100),
            "ordinary_probes": len(ordinary),
            "ordinary_answered_p50_s": percentile(ordinary_ok, 50),
            "ordinary_answered_p95_s": percentile(ordinary_ok, 95),
            "ordinary_answered_max_s": percentile(ordinary_ok, 100),
            "ordinary_refused": len(ordinary_busy),
            "ordinary_refused_max_s": percentile(ordinary_busy, 100),
            "ordinary_other": [outcome for _, outcome in ordinary if outcome not in ("ok", "busy")][:5],
            "ordinary_all_p95_s": percentile([seconds for seconds, _ in ordinary], 95),
            "queue_waits": waits,
            "lone_after_s": after,
        }
    )
    return figures


def flood(url: str, pid: int, photo: bytes, senders: int) -> dict:
    rows = [flood_rows(photo)]
    baseline = server_pss_mb(pid)
    peak = [baseline]
    stop = threading.Event()
    normal: list[float] = []
    normal_errors: list[str] = []

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], server_pss_mb(pid))
            stop.wait(0.1)

    def traffic() -> None:
        client = grpcclient.InferenceServerClient(url)
        row = image_input(grpcclient, np.frombuffer(photo, np.uint8)[None])
        while not stop.is_set():
            started = time.monotonic()
            try:
                client.infer(contract.CLASSIFICATION, [row], client_timeout=DEADLINE_S)
                normal.append(time.monotonic() - started)
            except Exception as exc:  # noqa: BLE001 - counted and shown
                normal_errors.append(str(exc)[:160])
            stop.wait(0.1)

    def send(_: int) -> tuple[float, str]:
        client = grpcclient.InferenceServerClient(url)
        started = time.monotonic()
        try:
            client.infer(contract.CLASSIFICATION, [image_input(grpcclient, rows[0])], client_timeout=DEADLINE_S * 2)
            return round(time.monotonic() - started, 2), "answered"
        except Exception as exc:  # noqa: BLE001 - the refusal is the figure
            return round(time.monotonic() - started, 2), str(exc)[:200]

    figures: dict = {"load_before": load(), "baseline_mb": round(baseline)}
    watchers = [threading.Thread(target=sample), threading.Thread(target=traffic)]
    for watcher in watchers:
        watcher.start()
    with ThreadPoolExecutor(senders) as pool:
        outcomes = list(pool.map(send, range(senders)))
    rows.clear()
    time.sleep(10.0)
    after_10s = server_pss_mb(pid)
    time.sleep(10.0)
    after_20s = server_pss_mb(pid)
    stop.set()
    for watcher in watchers:
        watcher.join()
    figures.update(
        {
            "load_after": load(),
            "senders": senders,
            "refused_after_s": [seconds for seconds, _ in outcomes],
            "message": outcomes[0][1],
            "peak_over_mb": round(peak[0] - baseline),
            "after_10s_over_mb": round(after_10s - baseline),
            "after_20s_over_mb": round(after_20s - baseline),
            "normal_answered": len(normal),
            "normal_p50_s": percentile(normal, 50),
            "normal_max_s": percentile(normal, 100),
            "normal_errors": normal_errors[:5],
            "lone_after_s": lone(url, photo, 10),
        }
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=96)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--flood", type=int, default=4, help="concurrent oversized requests (0: no flood)")
    parser.add_argument("--serve-arg", action="append", default=[], help="an argument for serve (repeatable)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "overload-report.json")
    args = parser.parse_args()
    import tempfile

    from triton_vision_authoring import models as model_files
    from triton_vision_models import tensors as t

    photo_path = SHARED / "images" / "kitten.jpg"
    if photo_path.is_file():
        photo = photo_path.read_bytes()
    else:
        from skimage import data

        from tests.support.images import accepted_images

        photo = accepted_images(data.chelsea())["baseline JPEG"]
    with tempfile.TemporaryDirectory(prefix="overload-") as workdir:
        repository = ensemble_repository(Path(workdir) / "repo", t.CLASSIFICATION)
        model_files.prepare(repository, model_files.CATALOGUE[t.CLASSIFIER], stand_in=True)
        report: dict = {"serve_args": args.serve_arg}
        with serving(repository, "--probe-interval", "0", *args.serve_arg) as serve:
            url = serve.grpc_url
            usual = lone(url, photo, 20)
            time.sleep(2.0)
            pid = serve.tritonserver_pid()
            start_mb = server_pss_mb(pid)
            report["memory_start"] = {"pss_mb": round(start_mb), "by_process": server_pss_by_process(pid)}
            report["lone_before_s"] = usual
            report["lone_before_median_s"] = statistics.median(usual)
            report["storm"] = storm(url, photo, args.clients, args.seconds)
            print(json.dumps({"storm": report["storm"]}), flush=True)
            if args.flood:
                report["flood"] = flood(url, serve.tritonserver_pid(), photo, args.flood)
                print(json.dumps({"flood": report["flood"]}), flush=True)
            else:
                time.sleep(10.0)
            # The flood's own figures are against its start; this is against the start of everything.
            report["memory_end"] = {
                "over_start_mb": round(server_pss_mb(pid) - start_mb),
                "by_process": server_pss_by_process(pid),
            }
            print(json.dumps({"memory": [report["memory_start"], report["memory_end"]]}), flush=True)
            report["serve_log"] = [line for line in serve.log().splitlines() if "serve:" in line][-10:]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
