"""The deployment files agree with each other and with the repository (their schemas: `make lint`)."""

from __future__ import annotations

import re

import yaml

from tests.conftest import MODEL_REPOSITORY, ROOT
from tests.support.modelconfigs import load_config

PACKAGE = ROOT / "docker" / "kubernetes"
KUBERNETES = PACKAGE / "base"
PROBE = ["triton-vision", "probe", "--url", "127.0.0.1:8001"]


def ensembles() -> list[str]:
    """The ensembles clients call: every ensemble that no other ensemble runs as a step."""
    configs = {p.parent.name: load_config(p.parent) for p in MODEL_REPOSITORY.glob("*/config.pbtxt")}
    steps = {s.model_name for c in configs.values() for s in c.ensemble_scheduling.step}
    return [name for name, c in configs.items() if c.platform == "ensemble" and name not in steps]


def test_hpa_reads_the_metric_the_adapter_rule_defines():
    hpa = yaml.safe_load((KUBERNETES / "hpa.yaml").read_text())
    (rule,) = yaml.safe_load((PACKAGE / "prometheus-adapter-values.yaml").read_text())["rules"]["custom"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == rule["name"]["as"]


def test_adapter_rule_tells_ensembles_from_their_steps_with_and_without_an_export_prefix():
    (rule,) = yaml.safe_load((PACKAGE / "prometheus-adapter-values.yaml").read_text())["rules"]["custom"]
    (pattern,) = set(re.findall(r'model[=!]~"([^"]+)"', rule["metricsQuery"]))
    names = [p.parent.name for p in MODEL_REPOSITORY.glob("*/config.pbtxt")]
    for prefix in ("", "tv_"):
        # PromQL regular expressions are anchored at both ends: fullmatch.
        matched = sorted(prefix + n for n in names if re.fullmatch(pattern, prefix + n))
        assert matched == sorted(prefix + n for n in ensembles())


def test_every_kubernetes_probe_and_the_image_healthcheck_run_the_same_real_inference():
    deployment = yaml.safe_load((KUBERNETES / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == PROBE, probe
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    healthcheck = re.search(r"HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])", dockerfile)
    assert healthcheck is not None and yaml.safe_load(healthcheck.group(1)) == PROBE


def test_compose_perf_service_measures_an_ensemble_of_the_repository():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    default = re.fullmatch(r"\$\{PERF_MODEL:-(\w+)\}", compose["services"]["perf"]["environment"]["PERF_MODEL"])
    assert default is not None and default.group(1) in ensembles()
    assert compose["services"]["perf"]["depends_on"]["triton"]["condition"] == "service_healthy"


LAUNCHER = ["python3", "-m", "triton_vision_serving.access", "tritonserver"]


def test_the_base_lists_every_manifest_beside_it():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    manifests = sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == manifests


def test_image_compose_and_kubernetes_start_tritonserver_through_the_restricting_launcher():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, flags=re.MULTILINE)
    assert cmd is not None and yaml.safe_load(cmd.group(1))[:4] == LAUNCHER
    deployment = yaml.safe_load((KUBERNETES / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][:4] == LAUNCHER
    (env,) = container["env"]
    assert env["name"] == "TRITON_VISION_ADMIN_KEY" and "secretKeyRef" in env["valueFrom"]
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    assert compose["services"]["triton"]["environment"]["TRITON_VISION_ADMIN_KEY"] == "${TRITON_VISION_ADMIN_KEY:-}"
    assert "command" not in compose["services"]["triton"]  # the image's CMD: the launcher


def test_network_policy_admits_the_namespace_on_http_and_grpc_and_only_the_scraper_on_metrics():
    policy = yaml.safe_load((KUBERNETES / "networkpolicy.yaml").read_text())
    deployment = yaml.safe_load((KUBERNETES / "deployment.yaml").read_text())
    service = yaml.safe_load((KUBERNETES / "service.yaml").read_text())
    assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    clients, scraper = policy["spec"]["ingress"]
    assert clients["from"] == [{"podSelector": {}}]  # this namespace's pods, no other namespace
    assert sorted(p["port"] for p in clients["ports"]) == ["grpc", "http"]
    assert [p["port"] for p in scraper["ports"]] == ["metrics"]
    assert set(scraper["from"][0]) == {"namespaceSelector", "podSelector"}  # one rule: both must match
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    named = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == named == {"http", "grpc", "metrics"}


def test_no_shipped_file_knows_the_development_machines_shared_folder():
    shipped = [*(ROOT / "backends").rglob("*.py"), *(ROOT / "client").rglob("*.py"), *(ROOT / "docker").rglob("*")]
    knowing = [p for p in shipped if p.is_file() and "shared/images" in p.read_text(errors="replace")]
    assert knowing == []


def test_image_and_kubernetes_give_tritonserver_the_same_response_cache_as_serve_takes_it():
    from triton_vision_serving.server_config import ServerOptions

    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, flags=re.MULTILINE)
    assert cmd is not None
    deployment = yaml.safe_load((KUBERNETES / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    image = [a for a in yaml.safe_load(cmd.group(1)) if a.startswith("--cache-config=")]
    pod = [a for a in container["args"] if a.startswith("--cache-config=")]
    serve = ServerOptions(ROOT / "model_repository", cache_size=256 * 2**20).cache_arguments(None)
    assert image == pod == serve == ["--cache-config=local,size=268435456"]
