"""``serve --trace otel``: the endpoint as Triton's OTLP/HTTP exporter needs it, and tritonserver's options."""

from __future__ import annotations

import argparse

import pytest

from triton_vision_contract.errors import UsageError
from triton_vision_serving import serve_command
from triton_vision_serving.tracing import TraceSettings, traces_url


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example.com/custom/path", "https://otel.example.com/custom/path"),
    ],
)
def test_an_endpoint_without_a_path_gets_otlps_traces_path(given, url):
    assert traces_url(given) == url


@pytest.mark.parametrize("given", ["collector:4318", "grpc://collector:4317", "http://"])
def test_an_endpoint_that_is_not_an_http_url_is_refused_naming_the_form(given):
    with pytest.raises(UsageError, match=r"not an OTLP/HTTP URL: give http\(s\)://HOST:PORT"):
        traces_url(given)


def test_tritonserver_gets_opentelemetry_mode_the_url_and_the_rate():
    arguments = TraceSettings("http://127.0.0.1:4318", rate=10).arguments()
    assert "--trace-config=mode=opentelemetry" in arguments
    assert "--trace-config=rate=10" in arguments
    assert "--trace-config=opentelemetry,url=http://127.0.0.1:4318/v1/traces" in arguments


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_trace_options_without_otel_are_refused_and_otel_defaults_to_every_request():
    with pytest.raises(UsageError, match="need --trace otel"):
        serve_command.trace_settings(parse("--trace-endpoint", "http://c:4318"))
    assert serve_command.trace_settings(parse()) is None
    settings = serve_command.trace_settings(parse("--trace", "otel"))
    assert settings is not None and settings.rate == 1 and settings.endpoint.startswith("http://127.0.0.1:4318")
