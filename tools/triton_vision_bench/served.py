"""What the server serves: readiness of the models, their configs as served (after Triton's
defaults), and where the ONNX file came from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from triton_vision_bench.messages import BenchError

THREAD_PARAMETERS = (
    "intra_op_thread_count",
    "idle_intra_op_thread_count",
    "inter_op_thread_count",
    "session.intra_op.allow_spinning",
    "num_threads",
    "execution_mode",
)


def model_source(repository: Path, model: str) -> str:
    """What the repository records of a model file's origin (informative only: never an error)."""
    try:
        from triton_vision_authoring.models import recorded_source

        source = recorded_source(repository, model)
        return source.describe() if source else "not recorded"
    except Exception as exc:  # noqa: BLE001 - informative only
        return f"unknown ({type(exc).__name__})"


def check_server(url: str, models: Sequence[str]) -> None:
    """A clear error unless the server at ``url`` answers and has every model ready."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    try:
        with grpcclient.InferenceServerClient(url) as client:
            if not client.is_server_live(client_timeout=10):
                raise BenchError(f"the server at {url} is not live")
            missing = [name for name in models if not client.is_model_ready(name, client_timeout=10)]
    except InferenceServerException as exc:
        raise BenchError(f"no Triton server answers at {url}: {exc.message()}") from exc
    if missing:
        raise BenchError(f"the server at {url} has no ready model {', '.join(missing)}")


def served_configs(url: str, models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What the server made of each config: instance groups (after Triton's defaults), batching, parameters."""
    import tritonclient.grpc as grpcclient

    found: dict[str, dict[str, Any]] = {}
    with grpcclient.InferenceServerClient(url) as client:
        for name in models:
            config = client.get_model_config(name, as_json=True).get("config", {})
            found[name] = {
                key: config[key]
                for key in ("instance_group", "dynamic_batching", "parameters", "optimization", "max_batch_size")
                if key in config
            }
            if "instance_group" in found[name]:
                found[name]["instance_group"] = [
                    {k: g.get(k) for k in ("count", "kind")} for g in found[name]["instance_group"]
                ]
            if "dynamic_batching" in found[name]:
                batching = found[name]["dynamic_batching"]
                found[name]["dynamic_batching"] = {
                    k: batching[k] for k in ("max_queue_delay_microseconds", "preferred_batch_size") if k in batching
                }
            if "optimization" in found[name]:
                found[name]["optimization"] = {"graph": found[name]["optimization"].get("graph", {})}
    return found


def instances_line(served: dict[str, dict[str, Any]]) -> str:
    """``model: 2 x KIND_CPU, delay 2000 us`` for each served model."""
    parts = []
    for name, config in served.items():
        groups = config.get("instance_group") or []
        count = " + ".join(f"{g.get('count', 1)} x {g.get('kind', '?')}" for g in groups) or "-"
        delay = config.get("dynamic_batching", {}).get("max_queue_delay_microseconds")
        threads = {k: v.get("string_value") for k, v in config.get("parameters", {}).items() if k in THREAD_PARAMETERS}
        extra = f", delay {delay} us" if delay is not None else ""
        extra += "".join(f", {k} {v}" for k, v in threads.items())
        parts.append(f"{name}: {count}{extra}")
    return "; ".join(parts)
