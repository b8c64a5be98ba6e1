"""A small OTLP/HTTP trace receiver on loopback: the spans a collector would get, decoded with
OpenTelemetry's own protobuf definitions (``opentelemetry-proto``). It reads both encodings OTLP/HTTP
allows: protobuf, and JSON (what tritonserver 2.51's exporter sends)."""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support.fake_triton import serving_http

ID_FIELDS = ("traceId", "spanId", "parentSpanId")


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str  # "" for a trace's root
    name: str
    attributes: dict
    start_ns: int
    end_ns: int


@dataclass
class Receiver:
    url: str = ""
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def traces(self) -> dict[str, list[Span]]:
        with self.lock:
            found: dict[str, list[Span]] = {}
            for span in self.spans:
                found.setdefault(span.trace_id, []).append(span)
            return found


def _value(any_value) -> object:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _ids_to_base64(node: object) -> object:
    """OTLP/JSON writes trace and span ids in hex; protobuf's JSON mapping reads bytes as base64."""
    if isinstance(node, list):
        return [_ids_to_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: base64.b64encode(bytes.fromhex(value)).decode() if key in ID_FIELDS and value else _ids_to_base64(value)
        for key, value in node.items()
    }


def decode(body: bytes, *, json_body: bool = False) -> list[Span]:
    """An ``ExportTraceServiceRequest``, OTLP/HTTP's protobuf or JSON encoding, as spans."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    if json_body:
        request = json_format.ParseDict(_ids_to_base64(json.loads(body)), ExportTraceServiceRequest())
    else:
        request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                spans.append(
                    Span(
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        span.name,
                        {a.key: _value(a.value) for a in span.attributes},
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                    )
                )
    return spans


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    """Accepts ``POST /v1/traces`` (protobuf, gzip or not) until the block ends."""
    receiver = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            json_body = self.headers.get("Content-Type", "").startswith("application/json")
            spans = decode(body, json_body=json_body) if self.path == "/v1/traces" else []
            with receiver.lock:
                receiver.spans.extend(spans)
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
            pass

    with serving_http(Handler) as address:
        receiver.url = f"http://{address}/v1/traces"
        yield receiver
