"""The ``triton-vision`` command table: what its help imports, each command's module and help, the
extra each needs, and how errors, Ctrl-C and a closed output end a command."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types

import pytest

from tests.conftest import ROOT
from triton_vision_cli import main as table
from triton_vision_cli.main import COMMANDS, Command, build_parser, main
from triton_vision_contract.errors import TritonVisionError, UsageError

TABLE_MODULES = sorted({command.module for command in COMMANDS})
# Command modules another helper adds; until then the table names them and says so when run.
NOT_YET = {"triton_vision_authoring.init"}


def loaded_after(argv: list[str]) -> dict[str, list[str]]:
    """The project's modules and the command modules loaded by ``main(argv)``, in a fresh Python."""
    code = (
        "import sys\n"
        "from triton_vision_cli.main import COMMANDS, main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "ours = sorted(m for m in sys.modules if m.startswith('triton_vision'))\n"
        "commands = sorted({c.module for c in COMMANDS} & set(sys.modules))\n"
        "heavy = sorted(m for m in ('numpy', 'tritonclient', 'cv2') if m in sys.modules)\n"
        "print(repr({'ours': ours, 'commands': commands, 'heavy': heavy}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    return eval(run.stdout.strip().splitlines()[-1])  # a dict literal printed by the code above


def test_the_help_lists_every_command_and_imports_none():
    loaded = loaded_after(["--help"])
    assert loaded == {
        "ours": [
            "triton_vision_cli",
            "triton_vision_cli.main",
            "triton_vision_contract",
            "triton_vision_contract.errors",
        ],
        "commands": [],
        "heavy": [],
    }


def test_the_help_shows_each_commands_line_and_extra_without_rst(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no line wrapped inside a word
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "``" not in text
    for command in COMMANDS:
        mark = "" if command.extra == "client" else f" [{command.extra}]"
        assert f"{command.name} {command.help}{mark}" in text


@pytest.mark.parametrize("command", ["classify", "serve", "demo", "check", "perf", "model-analyzer"])
def test_a_command_imports_its_own_module_and_no_other_commands(command):
    (row,) = [c for c in COMMANDS if c.name == command]
    assert loaded_after([command, "--help"])["commands"] == [row.module]


def test_the_command_names_are_unique_and_the_extras_known():
    assert len({c.name for c in COMMANDS}) == len(COMMANDS)
    assert {c.extra for c in COMMANDS} == set(table.EXTRA_MODULES) == {"client", "ui", "batch", "server", "bench"}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_commands_module_exists_and_its_help_describes_it(command, capsys):
    if command.module in NOT_YET and importlib.util.find_spec(command.module) is None:
        assert main([command.name, "--help"]) == 2
        assert capsys.readouterr().err == (
            f"error: 'triton-vision {command.name}' is not part of this installation (no module {command.module})\n"
        )
        return
    with pytest.raises(SystemExit) as exited:
        main([command.name, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert not description.startswith(("positional", "options")), text
    assert "``" not in text


def test_a_missing_extra_is_one_line_naming_it_and_exit_2(monkeypatch, capsys):
    monkeypatch.setitem(table.EXTRA_MODULES, "server", {"no_such_module_tv": "no-such-package"})
    assert main(["check", "--help"]) == 2
    assert capsys.readouterr().err == (
        "error: 'triton-vision check' needs the server extra (missing: no-such-package): "
        "pip install 'triton-vision[server]'\n"
    )


def test_the_server_extras_check_is_kept():
    assert table.SERVER_MODULES == {
        "pytriton": "nvidia-pytriton",
        "onnxruntime": "onnxruntime",
        "onnx": "onnx",
        "nvidia.dali": "nvidia-dali-cuda120",
    }
    assert table.missing_packages("server") == []  # this environment has the server extra


# -- errors --------------------------------------------------------------------------------------------
@pytest.fixture
def fake_command(monkeypatch):
    """A command ``fake`` whose run raises what the test puts in ``raised``."""
    raised: list[BaseException] = []
    module = types.ModuleType("tests_fake_command")

    def run(args):
        raise raised[0]

    module.add_arguments = lambda parser: parser.add_argument("--flag", action="store_true")
    module.run = run
    monkeypatch.setitem(sys.modules, module.__name__, module)
    row = Command("fake", "a command of the tests", module=module.__name__, extra="client")
    monkeypatch.setattr(table, "COMMANDS", (*COMMANDS, row))
    monkeypatch.setitem(table.BY_NAME, "fake", row)
    return raised


@pytest.mark.parametrize(
    ("error", "code"),
    [(UsageError("no such thing"), 2), (TritonVisionError("it broke"), 1)],
)
def test_a_project_error_is_one_line_and_its_exit_code(fake_command, capsys, error, code):
    fake_command.append(error)
    assert main(["fake"]) == code
    assert capsys.readouterr().err == f"error: {error}\n"


def test_ctrl_c_exits_130_without_a_traceback(fake_command, capsys):
    fake_command.append(KeyboardInterrupt())
    assert main(["fake"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_other_errors_are_not_hidden(fake_command):
    fake_command.append(RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["fake"])


def test_a_missing_dependency_of_a_command_names_the_extra(monkeypatch, capsys):
    row = Command("fake", "a command of the tests", module="tests_fake_broken_command", extra="server")
    monkeypatch.setattr(table, "COMMANDS", (*COMMANDS, row))
    monkeypatch.setitem(table.BY_NAME, "fake", row)

    def broken(name, *args, **kwargs):
        if name == row.module:
            raise ModuleNotFoundError("No module named 'somedependency'", name="somedependency")
        return original(name, *args, **kwargs)

    original = table.importlib.import_module
    monkeypatch.setattr(table.importlib, "import_module", broken)
    assert main(["fake"]) == 2
    assert capsys.readouterr().err == (
        "error: 'triton-vision fake' needs somedependency, which is not installed: "
        "pip install 'triton-vision[server]'\n"
    )


def test_a_closed_output_ends_the_command_quietly(tmp_path):
    """`triton-vision check --json | head`: the reader went away; exit 141, no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write fails: the reader has gone
    try:
        run = subprocess.run(
            [sys.executable, "-m", "triton_vision_cli", "check", "--json", str(tmp_path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    finally:
        os.close(write_end)
    assert (run.returncode, run.stderr) == (table.EXIT_OUTPUT_CLOSED, "")


def test_python_m_runs_the_table():
    run = subprocess.run(
        [sys.executable, "-m", "triton_vision_cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and run.stdout.startswith("triton-vision "), run.stderr


def test_inputs_may_follow_options_only_for_commands_that_take_inputs(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["check", "model_repository", "extra"])
    assert exited.value.code == 2
    assert "unrecognized arguments: extra" in capsys.readouterr().err
    args, extra = build_parser("classify").parse_known_args(["classify", "a/", "--top-k", "3", "b.jpg"])
    assert args.images == ["a/"] and extra == ["b.jpg"]
