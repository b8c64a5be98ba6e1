"""The UI's request handling that needs no server: body limits, parameters, binding, the command."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from triton_vision_ui.app import bind, is_loopback, read_capped
from triton_vision_ui.playground import Limit, PlaygroundError, TooLargeError, request_parameters

LIMIT = Limit(1000, "the 'image_guard' step's max_bytes")


async def chunks(*parts: bytes):
    for part in parts:
        yield part


def read(declared: str | None, *parts: bytes) -> bytes:
    return asyncio.run(read_capped(chunks(*parts), declared, LIMIT))


def test_a_body_within_the_limit_is_read_whole():
    assert read("1000", b"a" * 600, b"b" * 400) == b"a" * 600 + b"b" * 400
    assert read(None, b"x") == b"x"


def test_a_body_declaring_more_than_the_limit_is_refused_before_it_is_read():
    def never():
        raise AssertionError("the body must not be read")
        yield b""  # pragma: no cover

    with pytest.raises(TooLargeError, match=r"1001 bytes is above the limit of 1000 bytes \(the 'image_guard'"):
        asyncio.run(read_capped(never(), "1001", LIMIT))


def test_a_body_growing_past_the_limit_is_refused_as_soon_as_it_does():
    with pytest.raises(TooLargeError, match="more than 1000 bytes"):
        read(None, b"a" * 999, b"bb", b"never read")


def test_each_task_takes_its_own_parameters_parsed_and_ignores_the_others():
    query = {"top_k": "3", "score_threshold": "0.25", "max_detections": "7", "evil": "x"}
    assert request_parameters("classification", query) == {"top_k": 3}
    assert request_parameters("detection", query) == {"score_threshold": 0.25, "max_detections": 7}
    assert request_parameters("segmentation", query) == {"overlay": False}
    assert request_parameters("detection", {"score_threshold": ""}) == {}
    with pytest.raises(PlaygroundError, match="top_k must be a whole number, got 'three'"):
        request_parameters("classification", {"top_k": "three"})


def test_loopback_names_and_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.8.0.1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.0.2.1", "example.org", ""))


def test_a_taken_port_is_an_os_error_and_port_0_picks_one():
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        with pytest.raises(OSError):
            bind("127.0.0.1", port)
    finally:
        sock.close()


def test_ui_on_a_taken_port_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "triton_vision_cli", "ui", "--port", str(port), "--url", "127.0.0.1:1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_the_ui_runs_with_the_server_packages_unimportable():
    """Every module imported and the app built while importing a server package fails."""
    code = (
        "import sys, importlib, pkgutil\n"
        "sys.modules.update(triton_vision_models=None, triton_vision_server=None)  # import -> ImportError\n"
        "import triton_vision_ui\n"
        "for m in pkgutil.iter_modules(triton_vision_ui.__path__):\n"
        "    importlib.import_module('triton_vision_ui.' + m.name)\n"
        "from triton_vision_ui.app import create_app\n"
        "from triton_vision_ui.playground import Playground\n"
        "create_app(Playground('127.0.0.1:1', 'http')).router\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr
