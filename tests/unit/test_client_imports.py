"""The thin client stands alone: its modules import nothing from the server packages."""

from __future__ import annotations

import subprocess
import sys


def test_client_modules_import_nothing_from_the_server_packages():
    code = (
        "import sys, importlib, pkgutil, triton_vision_client\n"
        "for m in pkgutil.iter_modules(triton_vision_client.__path__):\n"
        "    importlib.import_module('triton_vision_client.' + m.name)\n"
        "bad = [m for m in sys.modules if m.startswith(('triton_vision_models', 'triton_vision_server'))]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stdout + probe.stderr
