"""Processes of a running local server, read from /proc (Linux): tritonserver, its model
processes (Python backend stubs) and their resident memory."""

from __future__ import annotations

import signal
import subprocess
from collections import defaultdict
from pathlib import Path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def children(pid: int) -> list[int]:
    """Live (not zombie) children of ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def server_processes(pid: int) -> dict[int, str]:
    """tritonserver and its Python backend stubs (its children)."""
    return {pid: "tritonserver", **{child: "stub" for child in children(pid)}}


def stub_pids(pid: int, model: str) -> list[int]:
    """The model processes of tritonserver ``pid`` that run ``model`` (their command line names
    ``<repository>/<model>/<version>/<file>``)."""
    found = []
    for child in children(pid):
        try:
            args = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(args) > 1 and Path(args[1].decode(errors="replace")).parent.parent.name == model:
            found.append(child)
    return found


def memory(pid: int) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for child, kind in server_processes(pid).items():
        try:
            totals[kind] += rss_mb(child)
        except OSError:
            continue
    return dict(totals)


def pss_mb(pid: int) -> float:
    """Proportional set size: shared pages (the Python backend's shared-memory pools, mapped by
    tritonserver and a model process) count once in a sum, not once per process as in RSS."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def server_pss_mb(pid: int) -> float:
    """tritonserver's and its model processes' memory, shared pages counted once."""
    total = 0.0
    for child in server_processes(pid):
        try:
            total += pss_mb(child)
        except OSError:
            continue
    return total


def server_pss_by_process(pid: int) -> dict[str, float]:
    """PSS in MB per process of the server: ``tritonserver`` and each model process by its model's name."""
    found: dict[str, float] = defaultdict(float)
    for child, kind in server_processes(pid).items():
        try:
            args = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            stub = kind == "stub" and len(args) > 1
            name = Path(args[1].decode(errors="replace")).parent.parent.name if stub else kind
            found[name] += round(pss_mb(child), 1)
        except OSError:
            continue
    return dict(found)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> None:
    """Send ``sig`` to a child that is still running, wait for it, kill it if it outlasts ``timeout_s``."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
