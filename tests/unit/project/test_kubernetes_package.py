"""The Kubernetes package as Kustomize renders it: each overlay installs what its name says, the
monitoring ships the dashboard the dashboard test checks, and the KServe resources fit together.
(Their schemas: ``make lint``, docker/kubernetes/validate.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT
from triton_vision_serving.server_config import ServerOptions
from triton_vision_serving.tracing import TraceSettings, traces_url

PACKAGE = ROOT / "docker" / "kubernetes"
ACCELERATORS = {"cpu": {}, "gpu": {"nvidia.com/gpu": 1}, "mig": {"nvidia.com/mig-1g.10gb": 1}}
ACCELERATORS["gpu-object-storage"] = ACCELERATORS["gpu"]
LAUNCHER = ["python3", "-m", "triton_vision_serving.access", "tritonserver"]


def render(overlay: str) -> dict[str, dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (it renders the overlays: `kubectl kustomize`)")
    out = subprocess.run(
        ["kubectl", "kustomize", str(PACKAGE / "overlays" / overlay)], capture_output=True, text=True, check=True
    ).stdout
    return {doc["kind"]: doc for doc in yaml.safe_load_all(out) if doc}


def container(resources: dict[str, dict]) -> dict:
    (triton,) = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    return triton


def test_every_overlay_directory_is_one_the_tests_know():
    assert sorted(p.name for p in (PACKAGE / "overlays").iterdir()) == sorted(ACCELERATORS)


@pytest.mark.parametrize("overlay", sorted(ACCELERATORS))
def test_each_overlay_asks_for_its_accelerator_and_nothing_else(overlay):
    triton = container(render(overlay))
    for side in ("requests", "limits"):
        extended = {k: v for k, v in triton["resources"][side].items() if "/" in k}
        assert extended == ACCELERATORS[overlay], side


@pytest.mark.parametrize("overlay", sorted(ACCELERATORS))
def test_each_overlay_keeps_the_admin_key_the_probes_and_tritons_metrics_options(overlay):
    triton = container(render(overlay))
    assert triton["args"][:4] == LAUNCHER
    assert [e["valueFrom"]["secretKeyRef"]["name"] for e in triton["env"]] == ["triton-vision-admin"]
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(triton)
    summaries = [a for a in ServerOptions(ROOT).metrics_arguments() if a.startswith("--metrics-config")]
    assert summaries and set(summaries) <= set(triton["args"])


@pytest.mark.parametrize("overlay", sorted(ACCELERATORS))
def test_the_model_repository_is_the_images_or_one_object_storage_url(overlay):
    repositories = [a for a in container(render(overlay))["args"] if a.startswith("--model-repository=")]
    want = "s3://" if "object-storage" in overlay else "/models"
    assert len(repositories) == 1 and repositories[0].split("=", 1)[1].startswith(want)


def test_monitoring_scrapes_the_pods_metrics_port_and_ships_the_tested_dashboard():
    resources = render("cpu")
    monitor, pod = resources["PodMonitor"], resources["Deployment"]["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for p in container(resources)["ports"]}
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} == {"metrics"} <= ports
    dashboard = resources["ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(dashboard["data"]["triton-vision-dashboard.json"])
    tested = json.loads((PACKAGE / "components" / "monitoring" / "triton-vision-dashboard.json").read_text())
    assert shipped == tested


def test_the_kserve_inference_services_run_on_the_serving_runtime_with_the_v2_protocol():
    runtime = yaml.safe_load((PACKAGE / "kserve" / "servingruntime.yaml").read_text())
    formats = {(f["name"], f["version"]) for f in runtime["spec"]["supportedModelFormats"]}
    (server,) = runtime["spec"]["containers"]
    assert server["args"][:4] == LAUNCHER
    assert "--model-repository=/mnt/models" in server["args"]  # where KServe's storage initializer puts it
    services = [yaml.safe_load(p.read_text()) for p in sorted((PACKAGE / "kserve").glob("inferenceservice*.yaml"))]
    assert len(services) == 2
    for service in services:
        model = service["spec"]["predictor"]["model"]
        assert model["runtime"] == runtime["metadata"]["name"]
        assert (model["modelFormat"]["name"], model["modelFormat"]["version"]) in formats
        assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    base, canary = sorted(services, key=lambda s: "canaryTrafficPercent" in s["spec"]["predictor"])
    assert base["metadata"]["name"] == canary["metadata"]["name"]  # applied over the running one
    assert 0 < canary["spec"]["predictor"]["canaryTrafficPercent"] < 100
    assert canary["spec"]["predictor"]["model"]["storageUri"] != base["spec"]["predictor"]["model"]["storageUri"]


def render_all(folder) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (it renders the overlays: `kubectl kustomize`)")
    out = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_the_tracing_component_passes_serves_trace_arguments_with_the_overlays_values():
    docs = render_all(PACKAGE / "examples" / "gpu-traces")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (triton,) = deployment["spec"]["template"]["spec"]["containers"]
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    from_maps = [e for e in triton["env"] if "configMapKeyRef" in e.get("valueFrom", {})]
    refs = {e["name"]: e["valueFrom"]["configMapKeyRef"] for e in from_maps}
    values = {name: maps[ref["name"]][ref["key"]] for name, ref in refs.items()}  # as Kubernetes expands $(NAME)
    expanded = [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], arg) for arg in triton["args"]]
    endpoint, rate = values["TRITON_VISION_TRACE_ENDPOINT"], values["TRITON_VISION_TRACE_RATE"]
    assert (endpoint, rate) == ("http://otel-collector.observability:4318/v1/traces", "1000"), "the overlay's values"
    assert endpoint == traces_url(endpoint), "Triton's exporter needs the full /v1/traces URL"
    traced = [arg for arg in expanded if arg.startswith("--trace-config")]
    assert traced == TraceSettings(endpoint=endpoint, rate=int(rate)).arguments(), "what `serve --trace otel` passes"
    assert expanded[:4] == LAUNCHER and "--model-repository=/models" in expanded
    component = yaml.safe_load((PACKAGE / "components" / "tracing" / "kustomization.yaml").read_text())
    (defaults,) = component["configMapGenerator"]
    default_endpoint = dict(item.split("=", 1) for item in defaults["literals"])["endpoint"]
    assert default_endpoint == traces_url(default_endpoint)


def test_the_service_monitor_replaces_the_pod_monitor_on_the_services_metrics_port():
    docs = render_all(PACKAGE / "examples" / "gpu-traces")
    kinds = [d["kind"] for d in docs]
    assert "PodMonitor" not in kinds and kinds.count("ServiceMonitor") == 1
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"metrics"} <= ports
    assert any(d["kind"] == "ConfigMap" and "triton-vision-dashboard.json" in d.get("data", {}) for d in docs)
