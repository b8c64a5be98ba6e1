"""Processes as Linux's ``/proc`` tells them: process trees, CPU ticks, resident memory, zombie
state and command lines. Used by ``serve``'s supervisor (which model process died) and by the
bench (where the CPU seconds go).

Every reader tolerates a process that ends while it is read: it is left out, never an error.
On a system without ``/proc`` the readers find nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
ZOMBIE_STATES = ("Z", "X")  # zombie (dead, not yet reaped) and dead


@dataclass(frozen=True)
class ProcStat:
    """The fields of one ``/proc/<pid>/stat`` line this project reads."""

    pid: int
    ppid: int
    state: str
    cpu_ticks: int  # utime + stime: CPU time the process itself used, in clock ticks
    rss_pages: int

    @property
    def zombie(self) -> bool:
        return self.state in ZOMBIE_STATES

    @property
    def cpu_s(self) -> float:
        return self.cpu_ticks / TICKS_PER_S

    @property
    def rss_bytes(self) -> int:
        return self.rss_pages * PAGE_BYTES


def parse_stat(text: str) -> ProcStat:
    """One ``/proc/<pid>/stat`` line; the command name (in parentheses) may hold spaces and parentheses."""
    pid = int(text.split(" ", 1)[0])
    fields = text.rsplit(")", 1)[1].split()  # fields[0] is the state (the stat line's 3rd field)
    return ProcStat(pid, int(fields[1]), fields[0], int(fields[11]) + int(fields[12]), int(fields[21]))


def read_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    """The process's stat, or None if it is gone."""
    try:
        return parse_stat((proc / str(pid) / "stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def all_stats(proc: Path = PROC) -> dict[int, ProcStat]:
    """Every process of the system by pid (empty without ``/proc``)."""
    if not proc.is_dir():
        return {}
    found = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat is not None:
                found[stat.pid] = stat
    return found


def children(pid: int, stats: Mapping[int, ProcStat]) -> list[int]:
    """The direct children of ``pid`` among ``stats``, zombies included."""
    return sorted(s.pid for s in stats.values() if s.ppid == pid)


def tree(root: int, stats: Mapping[int, ProcStat]) -> list[int]:
    """``root`` (if among ``stats``) and every descendant, parents before their children."""
    by_parent: dict[int, list[int]] = {}
    for stat in stats.values():
        by_parent.setdefault(stat.ppid, []).append(stat.pid)
    found: list[int] = []
    todo, seen = [root], set()
    while todo:
        pid = todo.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        if pid in stats:
            found.append(pid)
        todo.extend(sorted(by_parent.get(pid, [])))
    return found


def tree_cpu_s(root: int, stats: Mapping[int, ProcStat]) -> float:
    """CPU seconds of ``root`` and its descendants (processes that ended are not counted)."""
    return sum(stats[pid].cpu_ticks for pid in tree(root, stats)) / TICKS_PER_S


def cmdline(pid: int, proc: Path = PROC) -> list[str]:
    """The process's arguments ([] for a zombie, a kernel thread or a process that is gone)."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()  # the arguments end with a NUL, unless a process rewrote them
    return [arg.decode(errors="replace") for arg in parts]


def stub_model(args: Iterable[str], repository: Path) -> str:
    """The model a Triton backend stub runs, '' if ``args`` are not a stub's of ``repository``.

    A Python backend stub's first argument is ``<repository>/<model>/<version>/<file>``;
    ``repository`` is compared as given: pass it resolved (the local runtime hands tritonserver
    the resolved path).
    """
    args = list(args)
    if len(args) < 2 or not args[1]:
        return ""
    path = Path(args[1])
    return path.parent.parent.name if path.parent.parent.parent == repository else ""
