"""Where the server is: default and environment addresses, HOST:PORT checks, and what went wrong
when nothing answers (nothing listening, an unknown host, or the other protocol's port).

Standard library only, except :func:`diagnose`, which asks the address with the other protocol
(``urllib`` for HTTP, ``tritonclient.grpc`` for gRPC).
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping

import triton_vision_contract as contract

from .errors import BadURLError

PROTOCOLS = ("grpc", "http")
DEFAULT_PORTS = {"grpc": contract.DEFAULT_GRPC_PORT, "http": contract.DEFAULT_HTTP_PORT}
DEFAULT_URLS = {protocol: f"{contract.DEFAULT_HOST}:{port}" for protocol, port in DEFAULT_PORTS.items()}
PROTOCOL_NAMES = {"grpc": "gRPC", "http": "HTTP"}
URL_ENV = "TRITON_VISION_URL"  # the server's HOST:PORT when --url is not given
PROTOCOL_ENV = "TRITON_VISION_PROTOCOL"  # grpc or http when --protocol is not given
DIAGNOSE_TIMEOUT_S = 2.0
METRICS_PEEK_BYTES = 4096  # of an answer to GET /metrics: enough to see Prometheus text's first lines
# Triton's default ports: its layout, the same offsets from any first port (serve's free ports need not keep it).
TRITON_PORTS = {**DEFAULT_PORTS, "metrics": contract.DEFAULT_METRICS_PORT}


def environment_protocol(environ: Mapping[str, str] | None = None) -> str:
    """``TRITON_VISION_PROTOCOL`` if set (checked), else gRPC."""
    environ = os.environ if environ is None else environ
    value = environ.get(PROTOCOL_ENV, "").strip().lower()
    if not value:
        return "grpc"
    if value not in PROTOCOLS:
        raise BadURLError(f"{PROTOCOL_ENV}={environ[PROTOCOL_ENV]}: expected one of {', '.join(PROTOCOLS)}")
    return value


def resolve_url(url: str | None, protocol: str, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The address to use and where it came from: ``url``, else ``TRITON_VISION_URL``, else the
    protocol's default (127.0.0.1:8001 for gRPC, :8000 for HTTP). The address is checked."""
    environ = os.environ if environ is None else environ
    if url:
        return check_url(url, protocol, "--url"), "--url"
    if environ.get(URL_ENV, "").strip():
        return check_url(environ[URL_ENV].strip(), protocol, URL_ENV), URL_ENV
    return DEFAULT_URLS[protocol], "default"


def split_url(url: str) -> tuple[str, str | None]:
    """(host, port or None) of HOST:PORT, [IPv6]:PORT, HOST or [IPv6]."""
    if url.startswith("["):
        host, _, rest = url[1:].partition("]")
        return host, (rest[1:] if rest.startswith(":") else None)
    if url.count(":") == 1:
        host, port = url.split(":")
        return host, port
    return url, None


def check_url(url: str, protocol: str, source: str = "--url") -> str:
    """``url`` when it is HOST:PORT; else :class:`BadURLError` saying what to give instead.

    tritonclient takes HOST:PORT only: with a scheme gRPC fails to resolve the name, and without
    a port it dials 443 (gRPC) or 80 (HTTP), so both are refused here with the fix.
    """
    shown = url if source == "--url" else f"{source}={url}"
    if "://" in url:
        scheme, rest = url.split("://", 1)
        rest = rest.split("/", 1)[0]
        if rest and split_url(rest)[1] is None:
            rest = f"{rest}:{DEFAULT_PORTS[protocol]}"
        advice = f"--url {rest or 'HOST:PORT'}"
        if scheme.lower() in ("http", "https") and protocol != "http":
            advice += " --protocol http"
        elif scheme.lower() == "grpc" and protocol != "grpc":
            advice += " --protocol grpc"
        raise BadURLError(f"{shown}: give HOST:PORT without a scheme ({advice})")
    host, port = split_url(url)
    if ":" in host and not url.startswith("["):
        return url  # an IPv6 address without brackets: where its port starts is anyone's guess; tritonclient decides
    if not host:
        raise BadURLError(f"{shown}: no host (give HOST:PORT, e.g. {DEFAULT_URLS[protocol]})")
    if port is None:
        default = DEFAULT_PORTS[protocol]
        raise BadURLError(
            f"{shown} has no port: {PROTOCOL_NAMES[protocol]} listens on {default} by default (--url {url}:{default})"
        )
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise BadURLError(f"{shown}: the port must be a number in 1..65535, got '{port}'")
    return url


def _answers_http(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"http://{url}/v2/health/live", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP server, whatever it thinks of the path
    except Exception:  # noqa: BLE001 - refused, reset, or bytes that are no HTTP (a gRPC port's): not HTTP
        return False


def _triton_http(url: str, timeout: float) -> bool:
    """Whether Triton's HTTP answers at ``url``: its liveness route answers 200."""
    try:
        with urllib.request.urlopen(f"http://{url}/v2/health/live", timeout=timeout) as response:
            return response.status == 200
    except Exception:  # noqa: BLE001 - anything but that answer: not Triton's HTTP
        return False


def _answers_grpc(url: str, timeout: float) -> bool:
    import tritonclient.grpc as grpcclient

    try:
        client = grpcclient.InferenceServerClient(url)
    except Exception:  # noqa: BLE001 - a malformed target: not gRPC
        return False
    try:
        client.is_server_live(client_timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - anything but an answer: not Triton's gRPC
        return False
    finally:
        client.close()


def is_metrics_port(url: str, timeout: float = DIAGNOSE_TIMEOUT_S) -> bool:
    """Whether ``url`` answers ``GET /metrics`` with Prometheus text, as Triton's metrics port does."""
    try:
        with urllib.request.urlopen(f"http://{url}/metrics", timeout=timeout) as response:
            text = response.read(METRICS_PEEK_BYTES).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - no answer, an error status, no HTTP: not a metrics port
        return False
    return text.startswith("# HELP") or "\n# TYPE " in text or text.startswith("# TYPE")


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def beside(url: str, role: str, protocol: str, timeout: float = DIAGNOSE_TIMEOUT_S) -> str | None:
    """Where Triton answers ``protocol`` if it keeps its own layout around ``url``, a ``role`` port
    (HTTP 8000, gRPC 8001, metrics 8002: the same offsets from any first port), checked by asking
    there; None when nothing answers it there. Never a guess: a port is named only once it answered."""
    host, port = split_url(url)
    if port is None:
        return None
    other = int(port) + TRITON_PORTS[protocol] - TRITON_PORTS[role]
    if not 0 < other < 65536 or other == int(port):
        return None
    candidate = _join(host, other)
    return candidate if (_triton_http if protocol == "http" else _answers_grpc)(candidate, timeout) else None


def metrics_advice(url: str, protocol: str, timeout: float = DIAGNOSE_TIMEOUT_S) -> str:
    """What to say of ``url``, a metrics port, to a client of ``protocol``: the server's port for
    it (or for the other protocol) where one answers beside it, else which option to point where."""
    other = "http" if protocol == "grpc" else "grpc"
    head = f"{url} is a metrics port (Prometheus text at /metrics), not Triton's gRPC or HTTP"
    for wanted in (protocol, other):
        found = beside(url, "metrics", wanted, timeout)
        if found:
            option = f"--url {found}" + (f" --protocol {wanted}" if wanted != protocol else "")
            return f"{head}: the server's {PROTOCOL_NAMES[wanted]} port beside it is {found} ({option})"
    return (
        f"{head}: point --url at the server's {PROTOCOL_NAMES[protocol]} port (or its {PROTOCOL_NAMES[other]} "
        f"port, with --protocol {other}); `triton-vision serve` prints its ports when it is ready"
    )


def diagnose(url: str, protocol: str, *, timeout: float = DIAGNOSE_TIMEOUT_S) -> str | None:
    """Why ``url`` does not answer ``protocol``, as advice, or None when nothing listens there
    (the caller then says "Is one running?"). A port is suggested only where one answered."""
    host, port = split_url(url)
    try:
        addresses = socket.getaddrinfo(host, int(port or 0), type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        return f"cannot resolve the host '{host}' of {url}: check --url"
    family, kind, proto, _, address = addresses[0]
    with socket.socket(family, kind, proto) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except TimeoutError:
            return f"{url} does not answer within {timeout:g} s (a firewall, or the wrong address?): check --url"
        except OSError:
            return None  # refused: nothing listens there
    if is_metrics_port(url, timeout):
        return metrics_advice(url, protocol, timeout)
    other = "http" if protocol == "grpc" else "grpc"
    if (_answers_http if other == "http" else _answers_grpc)(url, timeout):
        found = beside(url, other, protocol, timeout)
        return f"{url} answers {PROTOCOL_NAMES[other]}, not {PROTOCOL_NAMES[protocol]}: use --protocol {other}, or " + (
            f"--url {found} (its {PROTOCOL_NAMES[protocol]} port)"
            if found
            else f"--url with the server's {PROTOCOL_NAMES[protocol]} port"
        )
    return (
        f"something listens on {url} but answers neither Triton's gRPC nor its HTTP: check --url "
        f"(Triton listens on {DEFAULT_PORTS['grpc']} for gRPC, {DEFAULT_PORTS['http']} for HTTP by default)"
    )
