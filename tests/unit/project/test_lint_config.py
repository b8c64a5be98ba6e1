"""pre-commit runs what `make lint` runs: one list of checks, two ways to run it."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT


def lint_commands() -> list[str]:
    """The commands of the Makefile's lint target (and the targets it runs), with $(BIN)/ dropped."""
    makefile = (ROOT / "Makefile").read_text()

    def recipe(target: str) -> list[str]:
        body = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
        assert body, f"no {target} target"
        commands: list[str] = []
        for line in body.group(1).splitlines():
            line = line.strip().lstrip("@")
            called = re.fullmatch(r"\$\(MAKE\)( --no-print-directory)? (\S+)", line)
            commands += recipe(called.group(2)) if called else [line.replace("$(BIN)/", "")]
        return commands

    return recipe("lint")


def test_every_lint_command_is_a_pre_commit_hook():
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    entries = [hook["entry"].replace(".venv/bin/", "") for hook in hooks]
    for command in lint_commands():
        program = command.split()[0]
        assert any(entry.split()[0] == program or command in entry for entry in entries) or any(
            "make" in entry and "kubernetes-validate" in entry for entry in entries if "docker/kubernetes" in command
        ), f"`make lint` runs `{command}`, which no pre-commit hook runs"
    assert lint_commands()[:4] == ["ruff check .", "ruff format --check .", "mypy", "lint-imports"]
