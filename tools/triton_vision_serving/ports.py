"""The server's ports: free ones for tests and the demo, and a check before tritonserver starts.

tritonserver reports a port that is taken only after every model has loaded, as the last line of
its log; ``serve`` checks first and names the port and the option that changes it.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping

from triton_vision_contract.errors import UsageError
from triton_vision_serving.errors import PortInUseError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on (host, port): a bind as tritonserver's would (SO_REUSEADDR,
    so connections of a previous server still closing do not count) fails with EADDRINUSE."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def check_ports(host: str, ports: Mapping[str, int]) -> None:
    """``ports``: option name (``--grpc-port``) -> port. Raises naming the first one taken."""
    seen: dict[int, str] = {}
    for option, port in ports.items():
        if not 0 < port < 65536:
            raise UsageError(f"{option} {port}: a port is a number in 1..65535")
        if port in seen:
            raise UsageError(f"{option} and {seen[port]} are both {port}: each needs a port of its own")
        seen[port] = option
    for option, port in ports.items():
        try:
            taken = port_in_use(host, port)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port} ({option}): {exc.strerror or exc}") from None
        if taken:
            raise PortInUseError(
                f"port {port} on {host} ({option}) is already in use, perhaps by another server: stop it "
                f"(`ss -ltnp 'sport = :{port}'` shows what listens there) or choose another with {option}"
            )
