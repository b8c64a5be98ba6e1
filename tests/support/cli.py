"""The command line as a user runs it, for integration tests: a subprocess, JSONL records, images."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np

from tests.conftest import ROOT

JOB_TIMEOUT_S = 300


def encode(rgb: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def cli(*args: str, stdin: str | None = None, timeout: float = JOB_TIMEOUT_S) -> subprocess.CompletedProcess:
    """``triton-vision ARGS`` as a user runs it, stdout and stderr captured (not terminals)."""
    return subprocess.run(
        [sys.executable, "-m", "triton_vision_cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def jsonl(text: str) -> dict[str, dict]:
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    by_path = {r["path"]: r for r in records}
    assert len(by_path) == len(records), "one record per image"
    return by_path


def url_of(server, protocol: str) -> str:
    """A running test server's address for ``protocol``."""
    return server.options.grpc_url if protocol == "grpc" else server.options.http_url
