"""``serve --trace otel``: Triton's OpenTelemetry trace mode, spans sent over OTLP/HTTP.

tritonserver 2.51 (the ``nvidia-pytriton`` wheel's binary too) exports a trace per sampled request,
its steps' spans nested inside for an ensemble, with OpenTelemetry's batch span processor, to an
OTLP/HTTP (protobuf) endpoint. ``--trace-rate N`` samples every N-th request (Triton's ``rate``).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from triton_vision_contract.errors import UsageError

OTLP_TRACES_PATH = "/v1/traces"  # OTLP/HTTP's path for traces, appended to an endpoint given without one
DEFAULT_ENDPOINT = f"http://127.0.0.1:4318{OTLP_TRACES_PATH}"  # a collector's OTLP/HTTP port on this machine
SERVICE_NAME = "triton-vision"
SPAN_EXPORT_DELAY_MS = 1000  # the batch span processor's wait before it sends what it holds


def traces_url(endpoint: str) -> str:
    """An OTLP/HTTP endpoint as Triton's exporter needs it: the full URL of the traces path."""
    parsed = urllib.parse.urlsplit(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(
            f"--trace-endpoint {endpoint!r} is not an OTLP/HTTP URL: give http(s)://HOST:PORT[/v1/traces] "
            "(a collector's OTLP/HTTP receiver, usually port 4318)"
        )
    if parsed.path in ("", "/"):
        parsed = parsed._replace(path=OTLP_TRACES_PATH)
    return urllib.parse.urlunsplit(parsed)


@dataclass(frozen=True)
class TraceSettings:
    endpoint: str = DEFAULT_ENDPOINT
    rate: int = 1  # every rate-th request is traced

    def arguments(self) -> list[str]:
        """tritonserver's ``--trace-config`` arguments for OpenTelemetry mode."""
        return [
            "--trace-config=mode=opentelemetry",
            "--trace-config=level=TIMESTAMPS",
            f"--trace-config=rate={self.rate}",
            "--trace-config=count=-1",
            f"--trace-config=opentelemetry,url={traces_url(self.endpoint)}",
            f"--trace-config=opentelemetry,resource=service.name={SERVICE_NAME}",
            f"--trace-config=opentelemetry,bsp_schedule_delay={SPAN_EXPORT_DELAY_MS}",
        ]

    def describe(self) -> str:
        every = "every request" if self.rate == 1 else f"every {self.rate}th request"
        return f"OpenTelemetry, {every}, to {traces_url(self.endpoint)}"
