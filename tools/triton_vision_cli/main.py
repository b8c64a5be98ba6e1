"""The ``triton-vision`` command: one table of every command, each imported only when it runs.

:data:`COMMANDS` is the table: a command's name, its one-line help, the module that defines it and
the install extra it needs. ``triton-vision --help`` prints it without importing any command
module, so it is quick and works with the client extra alone. Running a command first checks that
its extra is installed (else one line naming the extra, exit 2), then imports that command's
module and no other.

Where a command lives (one rule): next to the code it drives, in that code's package, so each
package owns its arguments and only this table knows every package (``.importlinter``: this
package is the top layer and nothing imports it). A command's module has ``add_arguments(parser)``
and ``run(args) -> int``, and is named for the command: ``<command>_command.py`` beside the code it
drives (``triton_vision_serving.serve_command`` beside ``serve``), or ``cli`` in a package built
around that command (``triton_vision_ui.cli``, ``triton_vision_bench.cli``), or the module itself
where the module is nothing but the command (``triton_vision_authoring.init``). The client's
seven commands share ``triton_vision_client.cli``, which maps their names to such pairs in its
``COMMANDS``. A command module imports no other command's module.

Errors: a :class:`~triton_vision_contract.errors.TritonVisionError` becomes one ``error:`` line,
exit 2 for a usage error, else 1; Ctrl-C exits 130 and a closed standard output (``| head``) 141,
without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from triton_vision_contract.errors import USAGE_EXIT_CODE, TritonVisionError, exit_code

DISTRIBUTION = "triton-vision"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader went away


@dataclass(frozen=True)
class Command:
    name: str
    help: str  # one line: the top-level help, and the command's description unless its module sets one
    module: str
    extra: str  # the install extra it needs: client, ui, batch, server or dev


COMMANDS = (
    Command(
        "classify",
        "top-k labels for image files, folders and globs",
        module="triton_vision_client.cli",
        extra="client",
    ),
    Command(
        "detect",
        "detections for image files and folders, recorded and drawn",
        module="triton_vision_client.cli",
        extra="client",
    ),
    Command(
        "segment",
        "class masks for image files and folders: indexed PNG and overlay",
        module="triton_vision_client.cli",
        extra="client",
    ),
    Command(
        "pipeline",
        "objects of a pipeline ensemble (detect, then classify each), recorded and drawn",
        module="triton_vision_client.cli",
        extra="client",
    ),
    Command(
        "instances",
        "instances for image files and folders: detections, masks and outlines, drawn",
        module="triton_vision_client.cli",
        extra="client",
    ),
    Command(
        "embed",
        "an embedding per image: a summary, .npy files, JSON Lines",
        module="triton_vision_client.cli",
        extra="client",
    ),
    Command(
        "similar",
        "nearest neighbours (cosine) among the embeddings `embed` wrote",
        module="triton_vision_client.cli",
        extra="client",
    ),
    Command(
        "keypoints",
        "keypoints for image files and folders: detections, keypoints and skeletons, drawn",
        module="triton_vision_client.cli",
        extra="client",
    ),
    Command(
        "probe",
        "a health check: a tiny image through every ensemble; exit 1 naming those that fail",
        module="triton_vision_client.cli",
        extra="client",
    ),
    Command(
        "ensembles",
        "a server's ensembles: task, images per request, state, stand-ins",
        module="triton_vision_client.cli",
        extra="client",
    ),
    Command(
        "batch",
        "a folder job on a Ray cluster: images from folders or object storage to Parquet",
        module="triton_vision_batch.cli",
        extra="batch",
    ),
    Command(
        "ui",
        "a browser playground: drop images, see each ensemble's answer drawn",
        module="triton_vision_ui.cli",
        extra="ui",
    ),
    Command(
        "serve",
        "run tritonserver on a model repository, kept healthy",
        module="triton_vision_serving.serve_command",
        extra="server",
    ),
    Command(
        "demo",
        "prepare, serve, and answer photos, then stop",
        module="triton_vision_serving.demo_command",
        extra="server",
    ),
    Command(
        "init",
        "write the built-in model repository into a folder",
        module="triton_vision_authoring.init",
        extra="client",
    ),
    Command(
        "models",
        "prepare a repository's ONNX model files, or show where each came from",
        module="triton_vision_authoring.models_command",
        extra="server",
    ),
    Command(
        "check",
        "validate a model repository offline (exit 1 on any problem)",
        module="triton_vision_authoring.check_command",
        extra="server",
    ),
    Command(
        "export-repo",
        "copy the repository with every model renamed <prefix><name>",
        module="triton_vision_authoring.export_repo_command",
        extra="server",
    ),
    Command(
        "add-model",
        "make an ONNX model an encoded-bytes ensemble from a spec",
        module="triton_vision_authoring.add_model_command",
        extra="server",
    ),
    Command(
        "perf",
        "run perf_analyzer against an ensemble with real JPEG/PNG images",
        module="triton_vision_bench.perf_command",
        extra="bench",
    ),
    Command(
        "bench",
        "measure an ensemble against client-side preprocessing, in-process and the work bound",
        module="triton_vision_bench.cli",
        extra="bench",
    ),
    Command(
        "model-analyzer",
        "profile an ensemble with Triton Model Analyzer",
        module="triton_vision_bench.model_analyzer_command",
        extra="bench",
    ),
)
BY_NAME = {command.name: command for command in COMMANDS}

# What each extra must make importable for its commands: importable module -> PyPI name. The UI's
# own packages are the UI's to name (triton_vision_ui.launch.missing_ui_packages, also used by
# `serve --ui-port`); the ui extra includes the client's.
CLIENT_MODULES = {"tritonclient": "tritonclient", "cv2": "opencv-python-headless", "PIL": "pillow"}
SERVER_MODULES = {
    "pytriton": "nvidia-pytriton",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "nvidia.dali": "nvidia-dali-cuda120",
}
# Measuring: a server to measure, bench's plot, perf_analyzer's CUDA runtime (libcudart.so.12).
BENCH_MODULES = {**SERVER_MODULES, "matplotlib": "matplotlib", "nvidia.cuda_runtime": "nvidia-cuda-runtime-cu12"}
# Batch jobs: the client, Ray, Parquet and fsspec (an object store's backend is the user's to add).
BATCH_MODULES = {**CLIENT_MODULES, "ray": "ray", "pyarrow": "pyarrow", "fsspec": "fsspec"}
EXTRA_MODULES = {
    "client": CLIENT_MODULES,
    "ui": CLIENT_MODULES,
    "server": SERVER_MODULES,
    "bench": BENCH_MODULES,
    "batch": BATCH_MODULES,
}

DESCRIPTION = (
    "Query the image ensembles of an NVIDIA Triton server: encoded image bytes in, answers out. "
    "With the server extra, serve a model repository and build your own."
)
EPILOG = (
    "The commands marked [ui], [batch], [server] or [bench] need that install extra (pip install "
    "'triton-vision[server]'), the others the client extra. triton-vision COMMAND --help describes one."
)


def unimportable(modules: Mapping[str, str]) -> list[str]:
    """PyPI names of ``modules`` (importable name -> PyPI name) that this Python cannot import."""
    missing = []
    for module, package in modules.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package (``nvidia``) is missing
            found = False
        if not found:
            missing.append(package)
    return missing


def missing_packages(extra: str) -> list[str]:
    """PyPI names of what ``extra``'s commands need and this Python cannot import."""
    missing = unimportable(EXTRA_MODULES[extra])
    if extra == "ui":
        from triton_vision_ui.launch import missing_ui_packages

        missing += missing_ui_packages()
    return missing


def definition(command: Command) -> Any:
    """What defines ``command``: its module, or its entry in the module's ``COMMANDS``; both have
    ``add_arguments(parser)`` and ``run(args) -> int``."""
    module = importlib.import_module(command.module)
    several = getattr(module, "COMMANDS", None)
    return module if several is None else several[command.name]


def _version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``triton-vision`` parser: every command listed; ``command``'s arguments too (its module imported)."""
    parser = argparse.ArgumentParser(prog="triton-vision", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"triton-vision {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    for row in COMMANDS:
        mark = "" if row.extra == "client" else f" [{row.extra}]"
        command_parser = sub.add_parser(row.name, help=row.help + mark, description=row.help)
        if row.name == command:
            definition(row).add_arguments(command_parser)
    return parser


def _unavailable(command: Command, error: ModuleNotFoundError) -> str:
    if error.name and (command.module == error.name or command.module.startswith(error.name + ".")):
        return f"'triton-vision {command.name}' is not part of this installation (no module {command.module})"
    return (
        f"'triton-vision {command.name}' needs {error.name or error}, which is not installed: "
        f"pip install 'triton-vision[{command.extra}]'"
    )


def _run(argv: list[str]) -> int:
    command = BY_NAME.get(argv[0]) if argv else None  # the top-level options (--help, --version) come first
    if command is None:
        build_parser().parse_args(argv)  # prints the help or the version, or says what is wrong; exits
        return USAGE_EXIT_CODE
    missing = missing_packages(command.extra)
    if missing:
        print(
            f"error: 'triton-vision {command.name}' needs the {command.extra} extra "
            f"(missing: {', '.join(missing)}): pip install 'triton-vision[{command.extra}]'",
            file=sys.stderr,
        )
        return USAGE_EXIT_CODE
    try:
        parser = build_parser(command.name)
    except ModuleNotFoundError as exc:
        print(f"error: {_unavailable(command, exc)}", file=sys.stderr)
        return USAGE_EXIT_CODE
    args, extra = parser.parse_known_args(argv)
    # Inputs may follow options (`classify photos/ --top-k 3 more/`): argparse leaves them over.
    if extra and hasattr(args, "images") and all(item == "-" or not item.startswith("-") for item in extra):
        args.images = [*args.images, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return definition(command).run(args)
    except TritonVisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``triton-vision`` with ``argv`` (default: the process's arguments); its exit code."""
    try:
        try:
            return _run(list(sys.argv[1:] if argv is None else argv))
        finally:
            sys.stdout.flush()  # a reader that went away shows here, not in the interpreter's exit
    except BrokenPipeError:
        # Standard output onto /dev/null: the interpreter flushes it once more on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OUTPUT_CLOSED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
