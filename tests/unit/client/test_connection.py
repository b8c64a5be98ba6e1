"""Where the server is: --url checks, the environment, and what the client says when nothing
answers (no server; the real server's other-protocol ports are in tests/integration)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support.fake_triton import serving_http
from triton_vision_client.client import VisionClient
from triton_vision_client.connection import check_url, diagnose, environment_protocol, resolve_url
from triton_vision_client.errors import BadURLError, ServerUnreachableError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "protocol", "message"),
    [
        (
            "http://127.0.0.1:8000",
            "grpc",
            "http://127.0.0.1:8000: give HOST:PORT without a scheme (--url 127.0.0.1:8000 --protocol http)",
        ),
        (
            "http://127.0.0.1:8000/",
            "http",
            "http://127.0.0.1:8000/: give HOST:PORT without a scheme (--url 127.0.0.1:8000)",
        ),
        ("grpc://example.org", "grpc", "grpc://example.org: give HOST:PORT without a scheme (--url example.org:8001)"),
        ("127.0.0.1", "grpc", "127.0.0.1 has no port: gRPC listens on 8001 by default (--url 127.0.0.1:8001)"),
        ("server.lan", "http", "server.lan has no port: HTTP listens on 8000 by default (--url server.lan:8000)"),
        ("127.0.0.1:grpc", "grpc", "127.0.0.1:grpc: the port must be a number in 1..65535, got 'grpc'"),
        (":8001", "grpc", ":8001: no host (give HOST:PORT, e.g. 127.0.0.1:8001)"),
    ],
)
def test_a_url_that_is_not_host_port_is_refused_with_the_fix(url, protocol, message):
    with pytest.raises(BadURLError) as info:
        check_url(url, protocol)
    assert str(info.value) == message


def test_host_port_and_ipv6_pass():
    assert check_url("127.0.0.1:8001", "grpc") == "127.0.0.1:8001"
    assert check_url("[::1]:8000", "http") == "[::1]:8000"
    assert check_url("::1:8001", "grpc") == "::1:8001"  # no brackets: left to tritonclient


def test_the_environment_gives_the_url_and_protocol_unless_the_command_line_does():
    environ = {"TRITON_VISION_URL": "10.0.0.5:9001", "TRITON_VISION_PROTOCOL": "HTTP"}
    assert resolve_url(None, "grpc", environ) == ("10.0.0.5:9001", "TRITON_VISION_URL")
    assert resolve_url("127.0.0.1:1234", "grpc", environ) == ("127.0.0.1:1234", "--url")
    assert resolve_url(None, "http", {}) == ("127.0.0.1:8000", "default")
    assert environment_protocol(environ) == "http"
    assert environment_protocol({}) == "grpc"
    with pytest.raises(BadURLError) as info:
        resolve_url(None, "grpc", {"TRITON_VISION_URL": "127.0.0.1"})
    assert str(info.value) == (
        "TRITON_VISION_URL=127.0.0.1 has no port: gRPC listens on 8001 by default (--url 127.0.0.1:8001)"
    )
    with pytest.raises(BadURLError, match="TRITON_VISION_PROTOCOL=udp: expected one of grpc, http"):
        environment_protocol({"TRITON_VISION_PROTOCOL": "udp"})


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_nothing_listening_keeps_the_is_one_running_advice(protocol):
    port = free_port()
    with VisionClient(f"127.0.0.1:{port}", protocol, timeout_s=5) as client:
        with pytest.raises(ServerUnreachableError) as info:
            client.check_server()
    message = str(info.value)
    assert message.startswith(f"cannot reach a triton-vision server at 127.0.0.1:{port} ({protocol}): ")
    assert message.endswith(". Is one running? Start it with `triton-vision serve`, or point --url at yours."), message
    assert "refused" in message.lower()


def test_an_unknown_host_is_named():
    assert diagnose("no-such-host.invalid:8001", "grpc") == (
        "cannot resolve the host 'no-such-host.invalid' of no-such-host.invalid:8001: check --url"
    )


@pytest.fixture
def http_listener() -> Iterator[str]:
    """A plain HTTP server (not Triton) on a free loopback port."""
    with serving_http(http.server.BaseHTTPRequestHandler) as url:
        yield url


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A TCP port that accepts connections and says nothing (neither HTTP nor gRPC)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_grpc_to_an_http_port_says_to_use_http_and_guesses_no_port(http_listener):
    with VisionClient(http_listener, "grpc", timeout_s=5) as client:
        with pytest.raises(ServerUnreachableError) as info:
            client.check_server()
    assert str(info.value) == (
        f"{http_listener} answers HTTP, not gRPC: use --protocol http, or --url with the server's gRPC port"
    )


@pytest.mark.parametrize(("protocol", "other"), [("grpc", "HTTP"), ("http", "gRPC")])
def test_a_metrics_port_is_named_as_one_and_no_port_is_guessed(protocol, other, capsys, tmp_path):
    from tests.support.fake_triton import fake_metrics
    from triton_vision_cli.main import main

    names = {"grpc": "gRPC", "http": "HTTP"}
    with fake_metrics() as url:
        expected = (
            f"{url} is a metrics port (Prometheus text at /metrics), not Triton's gRPC or HTTP: point --url at "
            f"the server's {names[protocol]} port (or its {other} port, with --protocol {other.lower()}); "
            "`triton-vision serve` prints its ports when it is ready"
        )
        with VisionClient(url, protocol, timeout_s=5) as client:
            with pytest.raises(ServerUnreachableError) as info:
                client.check_server()
        assert str(info.value) == expected
        image = tmp_path / "a.jpg"
        image.write_bytes(b"not sent")
        for command in (["classify", str(image)], ["ensembles"]):
            assert main([*command, "--url", url, "--protocol", protocol]) == 3
            assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {expected}"


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(100):
        first = free_port()
        if first + count >= 65536:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no consecutive free ports")


def test_a_metrics_port_beside_tritons_http_port_names_that_port():
    """Triton's own layout (HTTP 8000, gRPC 8001, metrics 8002): the HTTP port two below the metrics
    port is named once it answers Triton's health check there."""
    from tests.support import fake_triton

    http_port = consecutive_free_ports(3)
    metrics = http.server.ThreadingHTTPServer(("127.0.0.1", http_port + 2), fake_triton._metrics_handler())
    triton = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), fake_triton._handler(fake_triton.FakeTriton({})))
    for server in (metrics, triton):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"127.0.0.1:{http_port + 2}"
        with VisionClient(url, "http", timeout_s=5) as client:
            with pytest.raises(ServerUnreachableError) as info:
                client.check_server()
        assert str(info.value) == (
            f"{url} is a metrics port (Prometheus text at /metrics), not Triton's gRPC or HTTP: the server's HTTP "
            f"port beside it is 127.0.0.1:{http_port} (--url 127.0.0.1:{http_port})"
        )
        assert diagnose(url, "grpc", timeout=1.0) == (
            f"{url} is a metrics port (Prometheus text at /metrics), not Triton's gRPC or HTTP: the server's HTTP "
            f"port beside it is 127.0.0.1:{http_port} (--url 127.0.0.1:{http_port} --protocol http)"
        )
    finally:
        for server in (metrics, triton):
            server.shutdown()
            server.server_close()


def test_a_port_that_answers_neither_protocol_says_so(silent_listener):
    assert diagnose(silent_listener, "http", timeout=1.0) == (
        f"something listens on {silent_listener} but answers neither Triton's gRPC nor its HTTP: check --url "
        "(Triton listens on 8001 for gRPC, 8000 for HTTP by default)"
    )


@pytest.fixture
def garbage_listener() -> Iterator[str]:
    """A port that answers every connection with bytes that are no HTTP (as a gRPC port does)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    stop = threading.Event()

    def answer() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = sock.accept()
            except OSError:
                continue
            with connection:
                connection.sendall(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00 not http\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


def test_bytes_that_are_no_http_are_not_taken_for_http(garbage_listener):
    assert diagnose(garbage_listener, "grpc", timeout=1.0).startswith(f"something listens on {garbage_listener} ")
