"""Fresh virtual environments for the tests that install the project as a user does (the client extra
alone, the built wheel): created from this interpreter's base Python, with nothing of the checkout on
any path, and the installed ``triton-vision`` run in them."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

INSTALL_TIMEOUT_S = 600
COMMAND_TIMEOUT_S = 120
# pip's words for a dependency it could not fetch (no index, no network): the machine's, not the project's.
UNREACHABLE = (
    "No matching distribution found",
    "Could not find a version",
    "Max retries exceeded",
    "NewConnectionError",
)


def fresh_venv(home: Path, requirement: str, *, skip_unreachable: bool = False) -> Path:
    """A new virtual environment at ``home`` (the base interpreter of this one, ``sys._base_executable``)
    with ``pip install requirement``; a failed install fails the test, or skips it where pip could not
    fetch a dependency and ``skip_unreachable``."""
    venv.EnvBuilder(with_pip=True).create(home)
    install = subprocess.run(
        [str(home / "bin" / "python"), "-m", "pip", "install", "-q", requirement],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        env=clean_environment(),
    )
    if install.returncode != 0:
        reason = f"pip install {requirement} failed:\n{install.stdout[-2000:]}\n{install.stderr[-4000:]}"
        if skip_unreachable and any(words in install.stderr for words in UNREACHABLE):
            pytest.skip(reason)
        pytest.fail(reason)
    return home


def clean_environment() -> dict[str, str]:
    """This process's environment without what would put the checkout or this venv on a path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def run_installed(
    home: Path, *args: str, cwd: Path, timeout: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """``triton-vision ARGS`` as installed in the environment at ``home``, run in ``cwd``."""
    return subprocess.run(
        [str(home / "bin" / "triton-vision"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_environment(),
        cwd=cwd,
    )
