"""``serve --trace otel``: tritonserver sends an OpenTelemetry trace per request to a collector, the
ensemble's steps nested inside, checked against the ensembles' configs with a receiver on loopback."""

from __future__ import annotations

import time

from tests.support.modelconfigs import load_config
from tests.support.otlp import Span, otlp_receiver
from tests.support.serve import serving

REQUESTS = 3
SPANS_WAIT_S = 30.0  # the exporter sends what it holds every second


def expected_tree(repository, model: str) -> dict:
    """Each model's span holds one span per step of its ensemble (Triton's ensemble scheduling), and
    a model that is not an ensemble runs one ``compute`` span."""
    config = load_config(repository / model)
    if config.platform != "ensemble":
        return {"compute": {}}
    return {step.model_name: expected_tree(repository, step.model_name) for step in config.ensemble_scheduling.step}


def tree(spans: list[Span], parent: str) -> dict:
    children = sorted((s for s in spans if s.parent_id == parent), key=lambda s: s.start_ns)
    for child in children:
        assert s_within(child, next(s for s in spans if s.span_id == parent)), child
    return {child.name: tree(spans, child.span_id) for child in children}


def size(nested: dict) -> int:
    return sum(1 + size(children) for children in nested.values())


def s_within(child: Span, parent: Span) -> bool:
    return parent.start_ns <= child.start_ns <= child.end_ns <= parent.end_ns


def test_every_request_is_one_trace_with_the_ensembles_steps_nested_inside(classification_repository, kitten_jpeg):
    from triton_vision_client.client import VisionClient

    want = {"InferRequest": {"classification": expected_tree(classification_repository, "classification")}}
    with otlp_receiver() as receiver:
        trace = ("--trace", "otel", "--trace-endpoint", receiver.url, "--trace-rate", "1")
        with serving(classification_repository, *trace, "--probe-interval", "0") as serve:
            assert f"traces: OpenTelemetry, every request, to {receiver.url}" in serve.log()
            with VisionClient(serve.grpc_url, "grpc") as client:
                for _ in range(REQUESTS):
                    client.classify([kitten_jpeg])
            deadline = time.monotonic() + SPANS_WAIT_S
            while sum(len(spans) for spans in receiver.traces().values()) < REQUESTS * size(want):
                assert time.monotonic() < deadline, receiver.traces()
                time.sleep(0.5)
            time.sleep(2.0)  # nothing more arrives: one trace per request, not more
        traces = receiver.traces()
    assert len(traces) == REQUESTS, {t: [s.name for s in spans] for t, spans in traces.items()}
    for spans in traces.values():
        (root,) = [s for s in spans if not s.parent_id]
        assert {root.name: tree(spans, root.span_id)} == want
