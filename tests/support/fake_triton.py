"""A fake Triton over HTTP on a free loopback port, for the client's unit tests: the KServe v2 routes
the client calls (health, model config, metadata, readiness, statistics, the repository index,
inference), answering from configs given as Triton's config JSON. Inference answers model_info's
queries and every task with empty answers; every request is recorded. :class:`FakeMetrics` is a
Triton metrics port (Prometheus text at /metrics, nothing else)."""

from __future__ import annotations

import http.server
import json
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import triton_vision_contract as contract

RESTRICTED = "This API is restricted, expecting header 'triton-vision-admin-key'"


def ensemble(name: str, task: str, steps: Sequence[str], max_batch_size: int = 4) -> dict[str, Any]:
    """An ensemble's config JSON: the task's outputs, ``steps`` in order."""
    return {
        "name": name,
        "platform": "ensemble",
        "max_batch_size": max_batch_size,
        "input": [{"name": contract.IMAGE, "data_type": "TYPE_UINT8", "dims": [-1]}],
        "output": [{"name": output, "dims": [-1]} for output in contract.TASK_OUTPUTS[task]],
        "ensemble_scheduling": {"step": [{"model_name": step, "model_version": -1} for step in steps]},
    }


def classification_postprocess(name: str, classes: int) -> dict[str, Any]:
    """A classification ensemble's last step: scores of ``classes`` classes in, top-k out."""
    return {
        "name": name,
        "backend": "python",
        "input": [{"name": "LOGITS", "data_type": "TYPE_FP32", "dims": [classes]}],
        "output": [{"name": output, "dims": [-1]} for output in contract.TASK_OUTPUTS[contract.CLASSIFICATION]],
    }


def model_info(name: str = contract.MODEL_INFO) -> dict[str, Any]:
    return {"name": name, "backend": "python"}


def repository(prefix: str = "", *, classes: int = 1000) -> list[dict[str, Any]]:
    """The built-in ensembles (classification, detection, segmentation) and model_info, every name
    with ``prefix`` (as `export-repo --prefix` writes them)."""
    p = prefix
    return [
        ensemble(f"{p}classification", contract.CLASSIFICATION, [f"{p}classification_infer", f"{p}classify_post"], 32),
        ensemble(f"{p}classification_infer", contract.CLASSIFICATION, [f"{p}image_guard", f"{p}resnet18"], 32),
        classification_postprocess(f"{p}classify_post", classes),
        {"name": f"{p}image_guard", "backend": "python"},
        {"name": f"{p}resnet18", "platform": "onnxruntime_onnx"},
        ensemble(f"{p}detection", contract.DETECTION, [f"{p}image_guard", f"{p}faster_rcnn"]),
        {"name": f"{p}faster_rcnn", "platform": "onnxruntime_onnx"},
        ensemble(f"{p}segmentation", contract.SEGMENTATION, [f"{p}image_guard", f"{p}fcn_resnet50"]),
        {"name": f"{p}fcn_resnet50", "platform": "onnxruntime_onnx"},
        model_info(f"{p}{contract.MODEL_INFO}"),
    ]


@dataclass
class FakeTriton:
    """The server's state: its models (config JSON by name), which are loaded, what it answered."""

    models: dict[str, dict[str, Any]]
    unloaded: set[str] = field(default_factory=set)
    index_open: bool = False  # the repository index API (restricted by `serve`, open on a bare tritonserver)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)  # model_info's "sources" answer
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    url: str = ""

    @property
    def inferred(self) -> list[str]:
        """The models that got an inference request, in order."""
        return [path.split("/")[3] for method, path in self.requests if path.endswith("/infer")]

    def ensembles(self) -> list[str]:
        """model_info's "ensembles" answer: the ensembles no other ensemble calls."""
        called = {
            step["model_name"]
            for config in self.models.values()
            for step in config.get("ensemble_scheduling", {}).get("step", [])
        }
        return [n for n, c in self.models.items() if c.get("platform") == "ensemble" and n not in called]

    def loaded(self, name: str) -> bool:
        return name in self.models and name not in self.unloaded


def _not_found(name: str, server: FakeTriton) -> tuple[int, Any]:
    if name in server.models:
        return 400, {"error": f"Request for unknown model: '{name}' has no available versions"}
    return 400, {"error": f"Request for unknown model: '{name}' is not found"}


def _query(body: bytes, header_length: int | None) -> str:
    """model_info's QUERY: the first BYTES element, binary (after the JSON header) or in the JSON."""
    if header_length is None:
        return str(json.loads(body)["inputs"][0]["data"][0])
    (length,) = struct.unpack("<I", body[header_length : header_length + 4])
    return body[header_length + 4 : header_length + 4 + length].decode("utf-8")


def _empty_answers(task: str, batch: int) -> list[dict[str, Any]]:
    """Every output of ``task`` for ``batch`` images, as answers with nothing found."""
    shapes = {
        contract.CLASS_IDS: ([batch, 0], "INT32"),
        contract.SCORES: ([batch, 0], "FP32"),
        contract.LABELS: ([batch, 0], "BYTES"),
        contract.BOXES: ([batch, 0, 4], "FP32"),
        contract.COUNT: ([batch, 1], "INT32"),
        contract.MASK: ([batch, 1, 1], "UINT8"),
        contract.MASK_SIZE: ([batch, 2], "INT32"),
        contract.CLASS_FRACTIONS: ([batch, contract.VOC_CLASSES], "FP32"),
        contract.OVERLAY: ([batch, 1], "BYTES"),
    }
    if task == contract.CLASSIFICATION:  # one class: a probe reads the first
        for name in contract.TASK_OUTPUTS[contract.CLASSIFICATION]:
            shapes[name] = ([batch, 1], shapes[name][1])
    fill = {contract.COUNT: 0, contract.MASK_SIZE: 1, contract.SCORES: 1.0, contract.LABELS: b"class 0"}
    outputs = []
    for name in contract.TASK_OUTPUTS[task]:
        shape, datatype = shapes[name]
        size = 1
        for dim in shape:
            size *= dim
        value = fill.get(name, b"" if datatype == "BYTES" else 0)
        outputs.append({"name": name, "datatype": datatype, "shape": shape, "data": [value] * size})
    return outputs


def _encoded(answer: Any) -> tuple[bytes, int | None]:
    """The answer's body: JSON, or (with BYTES outputs) JSON then their elements as binary data
    (each a 4-byte little-endian length and the bytes), as Triton sends them; and the JSON's length."""
    if not isinstance(answer, dict) or "outputs" not in answer:
        return (b"" if answer is None else json.dumps(answer).encode()), None
    binary = b""
    outputs = []
    for output in answer["outputs"]:
        if output["datatype"] != "BYTES":
            outputs.append(output)
            continue
        elements = [v if isinstance(v, bytes) else str(v).encode() for v in output["data"]]
        data = b"".join(struct.pack("<I", len(v)) + v for v in elements)
        binary += data
        described = {key: value for key, value in output.items() if key != "data"}
        outputs.append({**described, "parameters": {"binary_data_size": len(data)}})
    header = json.dumps({**answer, "outputs": outputs}).encode()
    return header + binary, len(header)


def _answer(server: FakeTriton, method: str, path: str, body: bytes, header_length: int | None) -> tuple[int, Any]:
    parts = path.strip("/").split("/")
    if parts[:2] == ["v2", "health"]:
        return 200, None
    if method == "POST" and parts == ["v2", "repository", "index"]:
        if not server.index_open:
            return 403, {"error": RESTRICTED}
        states = {name: "READY" if server.loaded(name) else "UNAVAILABLE" for name in server.models}
        return 200, [{"name": name, "version": "1", "state": state} for name, state in states.items()]
    if parts == ["v2", "models", "stats"]:
        stats = [{"name": n, "version": "1"} for n in server.models if server.loaded(n)]
        return 200, {"model_stats": stats}
    if len(parts) < 3 or parts[:2] != ["v2", "models"]:
        return 404, {"error": "Not Found"}
    name = parts[2]
    if not server.loaded(name):
        return (400, None) if parts[3:] == ["ready"] else _not_found(name, server)
    config = server.models[name]
    if parts[3:] == ["ready"]:
        return 200, None
    if parts[3:] == ["config"]:
        return 200, config
    if parts[3:] == []:
        return 200, {"name": name, "versions": ["1"], "platform": config.get("platform", config.get("backend", ""))}
    if method == "POST" and parts[3:] == ["infer"]:
        if name.endswith(contract.MODEL_INFO):
            query = _query(body, header_length)
            answer = server.ensembles() if query == contract.INFO_ENSEMBLES else server.sources
            data = [json.dumps(answer).encode()]
            return 200, {"outputs": [{"name": contract.INFO_JSON, "datatype": "BYTES", "shape": [1], "data": data}]}
        task = contract.task_of(output["name"] for output in config.get("output", []))
        header = json.loads(body[:header_length] if header_length is not None else body)
        batch = int(header["inputs"][0]["shape"][0])
        if task is None:
            return 400, {"error": f"'{name}' is no ensemble of a task"}
        return 200, {"model_name": name, "outputs": _empty_answers(task, batch)}
    return 404, {"error": "Not Found"}


def _handler(server: FakeTriton) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _respond(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            header = self.headers.get("Inference-Header-Content-Length")
            path = self.path.split("?")[0]
            server.requests.append((method, path))
            status, answer = _answer(server, method, path, body, int(header) if header else None)
            data, json_length = _encoded(answer)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if json_length is not None:
                self.send_header("Inference-Header-Content-Length", str(json_length))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._respond("GET")

        def do_POST(self) -> None:
            self._respond("POST")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` on a free loopback port, in a thread; its HOST:PORT."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@contextmanager
def fake_triton(models: Sequence[Mapping[str, Any]], **state: Any) -> Iterator[FakeTriton]:
    """A :class:`FakeTriton` with ``models`` (config JSON), serving HTTP until the block ends."""
    server = FakeTriton({str(config["name"]): dict(config) for config in models}, **state)
    with serving_http(_handler(server)) as url:
        server.url = url
        yield server


PROMETHEUS_TEXT = (
    "# HELP nv_inference_request_success Number of successful inference requests, all batch sizes\n"
    "# TYPE nv_inference_request_success counter\n"
    'nv_inference_request_success{model="classification",version="1"} 3\n'
)


def _metrics_handler() -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _respond(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            found = self.path.split("?")[0] == "/metrics"
            data = PROMETHEUS_TEXT.encode() if found else b""
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._respond()

        def do_POST(self) -> None:
            self._respond()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def fake_metrics() -> Iterator[str]:
    """HOST:PORT of a Triton metrics port: Prometheus text at /metrics, 404 elsewhere."""
    with serving_http(_metrics_handler()) as url:
        yield url
