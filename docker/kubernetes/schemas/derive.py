"""Derive the vendored custom-resource schemas from their projects' published CRDs.

    python docker/kubernetes/schemas/derive.py SOURCE CRD.yaml...

Each CRD's served versions become ``<group>_<version>_<kind>.json``: the version's openAPIV3Schema
with descriptions removed (the InferenceService CRD is 2 MB with them), and a ``$comment`` naming
the source (``SOURCE``: repository@commit) and file. ``validate.py`` reads them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def without_descriptions(node: object) -> object:
    if isinstance(node, dict):
        return {k: without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [without_descriptions(v) for v in node]
    return node


def main(source: str, crds: list[str]) -> None:
    for path in crds:
        crd = yaml.safe_load(Path(path).read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            schema = without_descriptions(version["schema"]["openAPIV3Schema"])
            assert isinstance(schema, dict)
            schema = {"$comment": f"{group}/{version['name']} {kind}: from {source} {Path(path).name}", **schema}
            target = HERE / f"{group}_{version['name']}_{kind}.json"
            target.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n")
            print(f"{target.name}: {target.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
