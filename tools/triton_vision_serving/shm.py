"""The Python backend's shared-memory regions in ``/dev/shm``, and removing those left behind.

Each local server names its regions ``tv<serve pid>_<grpc port>_<generation>_...`` (Triton's
``shm-region-prefix-name``): the process that started it, its port, and which start of that
process it is (``serve`` restarts a dead tritonserver on the same port). A server killed with
SIGKILL cannot remove its regions; they are removed when the process that started it no longer
exists (at the next start of any local server) or, for a restarted one, before the restart.
"""

from __future__ import annotations

import os
from pathlib import Path

from triton_vision_serving.leftovers import remove_files

SHM_PREFIX = "tv"
SHM_DIR = Path("/dev/shm")


def region_prefix(grpc_port: int, generation: int, pid: int | None = None) -> str:
    return f"{SHM_PREFIX}{os.getpid() if pid is None else pid}_{grpc_port}_{generation}_"


def remove_stale_regions(directory: Path = SHM_DIR) -> list[Path]:
    """Regions left by a server whose starting process no longer exists (e.g. after a SIGKILL):
    ``tv<pid>_...`` where no process ``pid`` runs. Regions of live servers are kept."""
    stale = []
    for path in directory.glob(f"{SHM_PREFIX}[0-9]*_*"):
        pid_text = path.name[len(SHM_PREFIX) :].split("_", 1)[0]
        if pid_text.isdigit() and not Path(f"/proc/{pid_text}").exists():
            stale.append(path)
    return remove_files(stale)


def remove_regions(prefix: str, directory: Path = SHM_DIR) -> list[Path]:
    """The regions of one server (its prefix), once it is gone."""
    return remove_files(directory.glob(f"{prefix}*"))
