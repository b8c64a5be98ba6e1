"""The CLI's refusals without a server: what it checks before sending anything, and its words."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.conftest import ROOT
from triton_vision_cli.main import main
from triton_vision_client.folderjob import EXIT_SERVER, EXIT_USAGE


@pytest.fixture
def no_server() -> str:
    """HOST:PORT of a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"\xff\xd8 not sent")
    return path


def error_of(capsys) -> str:
    return capsys.readouterr().err.strip()


def test_an_output_that_is_a_directory_is_refused_before_the_server_is_asked(capsys, image, no_server, tmp_path):
    # Exit 2, not 3: the job stops at its own check, without trying the (absent) server.
    assert main(["classify", str(image), "--url", no_server, "-o", str(tmp_path)]) == EXIT_USAGE
    assert (
        error_of(capsys)
        == f"error: --output {tmp_path} is a directory: give a file, e.g. --output {tmp_path}/records.txt"
    )


def test_an_output_under_a_file_or_where_nothing_may_be_created_is_refused(capsys, image, no_server):
    assert main(["classify", str(image), "--url", no_server, "-o", f"{image}/records.jsonl"]) == EXIT_USAGE
    assert error_of(capsys) == f"error: --output {image}/records.jsonl: {image} is not a directory"
    assert main(["classify", str(image), "--url", no_server, "-o", "/sys/records.jsonl"]) == EXIT_USAGE
    assert error_of(capsys) == "error: --output /sys/records.jsonl: cannot create files in /sys (Permission denied)"


def test_an_out_folder_that_is_a_file_is_refused(capsys, image, no_server):
    assert main(["detect", str(image), "--url", no_server, "--out", str(image)]) == EXIT_USAGE
    assert error_of(capsys) == f"error: --out {image} is a file, not a directory"
    assert main(["segment", str(image), "--url", no_server, "--out", "/sys/masks"]) == EXIT_USAGE
    assert error_of(capsys) == "error: --out /sys/masks: cannot create files in /sys (Permission denied)"


def test_a_missing_output_folder_is_fine_and_not_created_before_the_server_answers(capsys, image, no_server, tmp_path):
    output = tmp_path / "new" / "deeper" / "records.jsonl"
    assert main(["classify", str(image), "--url", no_server, "-o", str(output), "--format", "jsonl"]) == EXIT_SERVER
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_a_timeout_must_be_above_zero(capsys, image, value):
    with pytest.raises(SystemExit) as info:
        main(["classify", str(image), "--timeout", value])
    assert info.value.code == EXIT_USAGE
    assert f"argument --timeout: must be above 0, got {value}" in error_of(capsys)


def test_top_k_is_checked_for_its_lower_bound_only(capsys, image):
    with pytest.raises(SystemExit):
        main(["classify", str(image), "--top-k", "0"])
    assert "argument --top-k: expected a whole number >= 1, got 0" in error_of(capsys)


def test_version_is_the_packages(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    expected = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    assert capsys.readouterr().out.strip() == f"triton-vision {expected}"


@pytest.mark.parametrize("command", [["classify", "a.jpg"], ["probe"], ["ensembles"]])
def test_a_url_without_a_port_is_a_usage_error_for_every_client_command(capsys, command):
    assert main([*command, "--url", "127.0.0.1"]) == EXIT_USAGE
    assert error_of(capsys).splitlines()[-1] == (
        "error: 127.0.0.1 has no port: gRPC listens on 8001 by default (--url 127.0.0.1:8001)"
    )


def test_the_environment_names_the_server(capsys, image, no_server, monkeypatch):
    monkeypatch.setenv("TRITON_VISION_URL", no_server)
    monkeypatch.setenv("TRITON_VISION_PROTOCOL", "http")
    assert main(["classify", str(image)]) == EXIT_SERVER
    assert f"cannot reach a triton-vision server at {no_server} (http)" in error_of(capsys)
    monkeypatch.setenv("TRITON_VISION_PROTOCOL", "udp")
    assert main(["classify", str(image)]) == EXIT_USAGE
    assert error_of(capsys) == "error: TRITON_VISION_PROTOCOL=udp: expected one of grpc, http"


def test_ensembles_without_a_server_exits_3_naming_it(capsys, no_server):
    assert main(["ensembles", "--url", no_server]) == EXIT_SERVER
    assert error_of(capsys).startswith(f"error: cannot reach a triton-vision server at {no_server} (grpc)")
