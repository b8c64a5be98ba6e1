"""Where tritonserver's log goes, how many old ones are kept, and what a log says went wrong.

Each start of a local tritonserver writes its own file, ``tritonserver-<date>-<time>-<grpc
port>-<pid of serve>-<start>.log``, in :func:`default_log_dir` (``$TRITON_VISION_LOG_DIR``, else
``$XDG_STATE_HOME/triton-vision/logs``, else ``~/.local/state/triton-vision/logs``). ``serve``
prints the path at start. Logs of servers still running are never removed; of the others the
newest :data:`KEEP_LOGS` are kept.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from triton_vision_serving.leftovers import remove_files

LOG_DIR_ENV = "TRITON_VISION_LOG_DIR"
KEEP_LOGS = 10
LOG_NAME = re.compile(r"tritonserver-\d{8}-\d{6}-\d+-(\d+)-\d+\.log")
# tritonserver's log lines: severity letter, MMDD, time, thread, file:line] message
ERROR_LINE = re.compile(r"^E\d{4} [\d:.]+ +\d+ [^\]]*\] ?(.*)$")
CAUSE_CHARS = 300
CAUSE_LINES = 10  # an error further up is rarely why it ended (start-up logs harmless errors)


def default_log_dir() -> Path:
    configured = os.environ.get(LOG_DIR_ENV)
    if configured:
        return Path(configured)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "triton-vision" / "logs"


def new_log_path(directory: Path, grpc_port: int, generation: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return directory / f"tritonserver-{stamp}-{grpc_port}-{os.getpid()}-{generation}.log"


def prune(directory: Path, keep: int = KEEP_LOGS) -> list[Path]:
    """Remove all but the newest ``keep`` logs of servers whose ``serve`` no longer runs."""
    finished = []
    for path in directory.glob("tritonserver-*.log"):
        match = LOG_NAME.fullmatch(path.name)
        if match is None or Path(f"/proc/{match.group(1)}").exists():
            continue
        try:
            finished.append((path.stat().st_mtime, path))
        except OSError:
            continue
    return remove_files(path for _, path in sorted(finished, reverse=True)[keep:])


def tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def cause(text: str) -> str:
    """The line of a log's end that says what went wrong: its last error line, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        match = ERROR_LINE.match(line)
        if match:
            return match.group(1).strip().strip('"')[:CAUSE_CHARS]
    for line in reversed(lines):
        if "error" in line.lower():
            return line[:CAUSE_CHARS]
    return lines[-1][:CAUSE_CHARS] if lines else "(the log is empty)"
