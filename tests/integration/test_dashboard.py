"""The Grafana dashboard against a real Prometheus scraping a real ``serve``: every panel's every
query returns data, and the panels that count what the test did (images, a refused GIF, cache hits,
a killed model process) show it.

Debian's ``prometheus`` (``make test`` installs it) scrapes serve's metrics port every second. The
queries are the dashboard's own text with Grafana's variables replaced by their defaults. A query
that reads only metrics that another exporter provides (kube-state-metrics, the kubelet's cAdvisor,
Triton on a GPU: :data:`ELSEWHERE`) is not evaluated here; any other metric a query names must be in
serve's scrape, so a panel reading a metric nobody exports fails.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.processes import stop, stub_pids
from tests.support.serve import serving

DASHBOARD = ROOT / "docker" / "kubernetes" / "components" / "monitoring" / "triton-vision-dashboard.json"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
# Metrics other exporters provide; queries that read only these are not evaluated locally.
ELSEWHERE = {
    "kube_pod_container_status_restarts_total": "kube-state-metrics",
    "container_memory_working_set_bytes": "the kubelet's cAdvisor",
    "nv_gpu_memory_used_bytes": "tritonserver on a GPU",
    "nv_gpu_utilization": "tritonserver on a GPU",
}
METRIC = re.compile(r"\b((?:nv|triton_vision|kube|container)_[a-z0-9_]+)\b")
PROMETHEUS_READY_S = 60.0
HEAL_WAIT_S = 90.0

pytestmark = pytest.mark.skipif(
    not os.access(PROMETHEUS, os.X_OK), reason=f"no prometheus binary ({PROMETHEUS}): apt-get install prometheus"
)


def variables(dashboard: dict) -> dict[str, str]:
    """Grafana's variables as Prometheus needs them: the dashboard's defaults, fixed ranges."""
    values = {"$__rate_interval": "30s", "$__range": "10m"}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "datasource":
            values[f"${variable['name']}"] = variable["current"]["value"]
    return values


def queries(dashboard: dict) -> list[tuple[str, str, str]]:
    """(panel title, refId, query) for every target of every panel."""
    names = variables(dashboard)
    found = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name in sorted(names, key=len, reverse=True):
                expr = expr.replace(name, names[name])
            found.append((panel["title"], target["refId"], expr))
    return found


def query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]


def finite(result: list[dict]) -> list[tuple[dict, float]]:
    values = [(series["metric"], float(series["value"][1])) for series in result]
    return [(labels, v) for labels, v in values if math.isfinite(v)]


def start_prometheus(tmp_path: Path, metrics_port: int) -> tuple[subprocess.Popen, str]:
    from triton_vision_serving.ports import free_port

    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: triton-vision\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + PROMETHEUS_READY_S
    while True:
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=2):
                return process, base
        except OSError:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.5)


def traffic(grpc_url: str, photos: list[bytes], stop_event: threading.Event) -> None:
    """Photos in turn (the cache answers the repeats), a GIF now and then (image_guard refuses it)."""
    from triton_vision_client.client import VisionClient
    from triton_vision_contract.errors import TritonVisionError

    with VisionClient(grpc_url, "grpc") as client:
        sent = 0
        while not stop_event.is_set():
            try:
                if sent % 10 == 9:
                    client.classify([b"GIF89a" + bytes(64)])
                else:
                    client.classify([photos[sent % len(photos)]])
            except TritonVisionError:
                pass
            sent += 1
            time.sleep(0.05)


def test_every_panel_of_the_dashboard_returns_data_from_a_prometheus_scraping_serve(
    classification_repository, kitten_jpeg, chelsea_rgb, tmp_path
):
    import cv2

    dashboard = json.loads(DASHBOARD.read_text())
    chelsea = cv2.imencode(".jpg", cv2.cvtColor(chelsea_rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    with serving(classification_repository, "--cache-size", "16M", "--probe-interval", "0") as serve:
        prometheus, base = start_prometheus(tmp_path, serve.metrics_port)
        stop_event = threading.Event()
        worker = threading.Thread(target=traffic, args=(serve.grpc_url, [kitten_jpeg, chelsea], stop_event))
        worker.start()
        try:
            time.sleep(5.0)
            os.kill(stub_pids(serve.tritonserver_pid(), "resnet18")[0], signal.SIGKILL)
            deadline = time.monotonic() + HEAL_WAIT_S
            while "model 'resnet18': reloaded" not in serve.log():
                assert time.monotonic() < deadline, serve.log()
                time.sleep(0.5)
            time.sleep(20.0)  # traffic after the heal, scraped many times over
            scraped = urllib.request.urlopen(f"http://127.0.0.1:{serve.metrics_port}/metrics").read().decode()
            exported = {m for m in METRIC.findall(scraped)}
            evaluated, elsewhere, empty = [], [], []
            for title, ref, expr in queries(dashboard):
                names = set(METRIC.findall(expr))
                unknown = names - exported - set(ELSEWHERE)
                assert not unknown, f"panel '{title}' {ref} reads {sorted(unknown)}, which nobody exports"
                if names <= set(ELSEWHERE):
                    elsewhere.append((title, ref, sorted(ELSEWHERE[n] for n in names)))
                    continue
                result = finite(query(base, expr))
                (evaluated if result else empty).append((title, ref, expr))
            assert not empty, f"queries without data: {empty}"
            assert len(evaluated) >= len(dashboard["panels"]) - 1  # all but GPU utilization, here
            print(f"\n{len(evaluated)} queries returned data; not evaluated here: {elsewhere}")

            # What the test did shows in the panels that count it.
            per_query = {(t, r): e for t, r, e in queries(dashboard)}
            images = dict((s["model"], v) for s, v in finite(query(base, per_query["Images/s per ensemble", "A"])))
            assert images.get("classification", 0) > 0
            refusals = dict((s["reason"], v) for s, v in finite(query(base, per_query["Refusals by reason", "A"])))
            assert refusals["image"] > 0 and set(refusals) == {"image", "parameter", "input", "internal"}
            hits = dict((s["model"], v) for s, v in finite(query(base, per_query["Response cache hit rate", "A"])))
            assert hits["classification_infer"] > 0  # two photos in turn: each repeat is a hit
            heals = {(s["model"], s["cause"]): v for s, v in finite(query(base, per_query["Model process heals", "A"]))}
            assert heals[("resnet18", "process_died")] >= 1
            assert heals[("image_guard", "process_died")] == 0
        finally:
            stop_event.set()
            worker.join(timeout=60)
            stop(prometheus)
