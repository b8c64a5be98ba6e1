"""Where the server's CPU seconds go: each process of the tritonserver tree, by name.

A snapshot (:func:`server_tree`) is taken when a measurement window opens and when it closes;
:func:`per_image` turns the two into CPU milliseconds per image for ``tritonserver`` itself and
for each composing model's backend stub (the local runtime runs every model, DALI and ONNX
Runtime ones too, in a stub whose command line names ``<repository>/<model>/<version>/<file>``).
Processes of the same model (several instances) are added together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triton_vision_serving import procfs

SERVER = "tritonserver"


@dataclass(frozen=True)
class ProcessSample:
    pid: int
    name: str  # "tritonserver", the model a stub runs, or the process's command
    kind: str  # "server", "stub" or "other"
    cpu_ticks: int
    rss_bytes: int


def server_tree(root: int | None, repository: Path | None) -> list[ProcessSample] | None:
    """Every process of the tree under ``root`` now; None when the server is not a local process."""
    if root is None:
        return None
    stats = procfs.all_stats()
    if root not in stats:
        return None
    served = repository.resolve() if repository is not None else None
    samples = []
    for pid in procfs.tree(root, stats):
        stat = stats[pid]
        if pid == root:
            name, kind = SERVER, "server"
        else:
            args = procfs.cmdline(pid)
            model = procfs.stub_model(args, served) if served is not None else ""
            name, kind = (model, "stub") if model else (Path(args[0]).name if args else f"pid {pid}", "other")
        samples.append(ProcessSample(pid, name, kind, stat.cpu_ticks, stat.rss_bytes))
    return samples


def per_image(
    before: Sequence[ProcessSample], after: Sequence[ProcessSample], images: int, order: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """CPU milliseconds per image of each named process between two snapshots, with its resident
    memory at the end: the server first, then the models in ``order`` (the ensemble's steps), then
    the rest.

    A process that started in between counts from zero; one that ended in between is lost (its
    ticks went with it).
    """
    start = {s.pid: s.cpu_ticks for s in before}
    rows: dict[str, dict[str, Any]] = {}
    for sample in after:
        row = rows.setdefault(
            sample.name, {"process": sample.name, "kind": sample.kind, "processes": 0, "ticks": 0, "rss_bytes": 0}
        )
        row["processes"] += 1
        row["ticks"] += sample.cpu_ticks - start.get(sample.pid, 0)
        row["rss_bytes"] += sample.rss_bytes
    result = []
    for row in rows.values():
        ticks = row.pop("ticks")
        row["cpu_ms_per_image"] = ticks / procfs.TICKS_PER_S / images * 1e3 if images else math.nan
        row["rss_mb"] = row.pop("rss_bytes") / 2**20
        result.append(row)
    rank = {name: index for index, name in enumerate(order)}
    return sorted(result, key=lambda r: (r["kind"] != "server", rank.get(r["process"], len(rank)), r["process"]))
