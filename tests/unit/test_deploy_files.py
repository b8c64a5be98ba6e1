"""The deployment files agree with each other and with the repository (their schemas: `make lint`)."""

from __future__ import annotations

import re

import yaml

from tests.conftest import MODEL_REPOSITORY, ROOT
from tests.modelconfigs import load_config

KUBERNETES = ROOT / "docker" / "kubernetes"
PROBE = ["triton-vision", "probe", "--url", "127.0.0.1:8001"]


def ensembles() -> list[str]:
    return [
        p.parent.name for p in MODEL_REPOSITORY.glob("*/config.pbtxt") if load_config(p.parent).platform == "ensemble"
    ]


def test_hpa_reads_the_metric_the_adapter_rule_defines():
    hpa = yaml.safe_load((KUBERNETES / "hpa.yaml").read_text())
    (rule,) = yaml.safe_load((KUBERNETES / "prometheus-adapter-values.yaml").read_text())["rules"]["custom"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == rule["name"]["as"]


def test_adapter_rule_tells_ensembles_from_their_steps_with_and_without_an_export_prefix():
    (rule,) = yaml.safe_load((KUBERNETES / "prometheus-adapter-values.yaml").read_text())["rules"]["custom"]
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
