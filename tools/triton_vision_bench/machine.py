"""Facts about the machine a report was measured on: cores, CPU model, memory, load, versions."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

VERSIONED_MODULES = ("onnxruntime", "nvidia.dali", "tritonclient", "numpy", "cv2")


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def read_cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def read_loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "-"


def machine_description() -> dict[str, Any]:
    memory = ""
    try:
        total_kb = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
        memory = f"{total_kb / 1024**2:.0f} GiB memory"
    except (OSError, ValueError, IndexError):
        pass
    return {"cores": cores(), "cpu_model": read_cpu_model(), "memory": memory, "platform": platform.platform()}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for module in VERSIONED_MODULES:
        try:
            found[module] = __import__(module, fromlist=["__version__"]).__version__
        except (ImportError, AttributeError):
            found[module] = "-"
    return found
