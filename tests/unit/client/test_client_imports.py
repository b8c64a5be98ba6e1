"""The thin client stands alone: no module of the client or the contract imports a server package,
at the top or inside a function, and the contract imports only the standard library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CLIENT = ROOT / "client"
# What the client must never import: the models' library and the tools above it (the command
# table included: it imports the client, not the other way round).
SERVER_PACKAGES = (
    "triton_vision_models",
    "triton_vision_serving",
    "triton_vision_authoring",
    "triton_vision_bench",
    "triton_vision_cli",
)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in a file, wherever it stands."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def test_no_client_or_contract_file_imports_a_server_package_anywhere():
    files = sorted(CLIENT.rglob("*.py"))
    assert len(files) > 10, files
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in files
        for line, module in imported_modules(path)
        if module in SERVER_PACKAGES
    ]
    assert bad == []


def test_the_contract_imports_only_the_standard_library():
    contract = CLIENT / "triton_vision_contract"
    outside = [
        (path.name, line, module)
        for path in contract.rglob("*.py")
        for line, module in imported_modules(path)
        if module not in sys.stdlib_module_names and module != "__future__"
    ]
    assert outside == []


def test_importing_every_client_module_loads_no_server_package():
    code = (
        "import sys, importlib, pkgutil, triton_vision_client, triton_vision_contract\n"
        "for m in pkgutil.iter_modules(triton_vision_client.__path__):\n"
        "    importlib.import_module('triton_vision_client.' + m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {SERVER_PACKAGES!r}]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stdout + probe.stderr
