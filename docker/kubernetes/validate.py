"""``make lint``'s check of the Kubernetes package, offline: every overlay and example overlay (the
optional components: traces, a ServiceMonitor) rendered with Kustomize (``kubectl kustomize``) and
the KServe resources, each resource validated strictly (unknown fields are errors) against the
pinned Kubernetes version's schemas, or, for custom resources (PodMonitor, ServiceMonitor,
ServingRuntime, InferenceService), against the schema their project publishes in its CRD
(``schemas/``, derived by ``schemas/derive.py``).

    python docker/kubernetes/validate.py KUBERNETES_VERSION
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
RENDERED = sorted(
    p for folder in ("overlays", "examples") for p in (HERE / folder).iterdir() if (p / "kustomization.yaml").exists()
)
PLAIN = sorted((HERE / "kserve").glob("*.yaml"))


def strict(schema: object) -> object:
    """A CRD schema that refuses unknown fields, as the API server's strict field validation does
    (it prunes them silently otherwise): objects with properties and no escape hatch get
    ``additionalProperties: false``."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        if not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


def custom_schemas() -> dict[tuple[str, str], dict]:
    found = {}
    for path in sorted((HERE / "schemas").glob("*.json")):
        group, version, kind = path.stem.split("_")
        found[(f"{group}/{version}", kind)] = strict(json.loads(path.read_text()))
    return found


def render(overlay: Path) -> list[dict]:
    try:
        out = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True)
    except FileNotFoundError:
        sys.exit("kubectl is needed to render the overlays (`kubectl kustomize`): install kubectl")
    except subprocess.CalledProcessError as exc:
        sys.exit(f"{overlay.relative_to(HERE)}: kustomize failed: {exc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def problems(doc: dict, version: str, schemas: dict) -> list[str]:
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key in schemas:
        validator = jsonschema.Draft7Validator(schemas[key])
        return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path)) or '(top)'}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key[0]} {key[1]} in Kubernetes {version} nor in schemas/"]
    return []


def main(version: str) -> int:
    schemas = custom_schemas()
    sources = [(p.relative_to(HERE), render(p)) for p in RENDERED]
    sources += [(p.relative_to(HERE), [d for d in yaml.safe_load_all(p.read_text()) if d]) for p in PLAIN]
    failed = 0
    for name, docs in sources:
        for doc in docs:
            for problem in problems(doc, version, schemas):
                failed += 1
                print(f"{name}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}: {problem}")
        kinds = ", ".join(sorted(d["kind"] for d in docs))
        print(f"{name}: {len(docs)} resources ({kinds})")
    if failed:
        print(f"{failed} problems")
        return 1
    print(f"Kubernetes package valid (Kubernetes {version}; custom resources against {len(schemas)} CRD schemas)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
