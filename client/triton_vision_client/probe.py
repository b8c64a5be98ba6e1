"""``triton-vision probe``: is every ensemble of a server answering? (a liveness/readiness probe)

Sends one tiny embedded image through each ensemble the server has (or those named), through the
call of its task, and exits 0 when every one answers, 1 naming the ones that do not (2 for a usage
error). Built for Docker ``HEALTHCHECK`` and Kubernetes exec probes (``triton-vision probe --url
127.0.0.1:8001``): unlike ``/v2/health/ready``, which Triton keeps answering 200 while a model's
process is dead, a probe that fails means a request would fail.

Which ensembles a server has, and their tasks: :meth:`VisionClient.ensembles` (the repository's
ensembles from ``model_info``, loaded or not: one that failed to load fails the probe; without
model_info, the built-in ensembles the server knows). Any name, any task.

A probe is sent at ``contract.PROBE_PRIORITY``: the ensembles' models serve it before the requests
in their bounded queues, so it answers while the server is overloaded
(docs/reliability.md#bounded-queues-and-overload). An ensemble whose models lack that priority
level may refuse it for load ("Exceeds maximum queue size"): that is an answer, so the probe
passes, saying ``busy``. A busy server is working; a failing liveness probe would restart it and
drop every request it holds.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import triton_vision_contract as contract

from .client import ClientError, VisionClient
from .errors import EnsembleMismatchError
from .folderjob import check_protocol
from .survey import prefix_hint

# A 32x32 RGB PNG (colour gradient), 105 bytes: decodes with every decoder the ensembles use.
PROBE_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAAAMElEQVRIx+3NMQoAIAwEsBMc+v/3FtRH2C2QPesknZqzu14wSCAQ"
    "CAQCgUAgEPxyAe8N8p52LsWdAAAAAElFTkSuQmCC"
)
ENSEMBLES = contract.BUILT_IN_ENSEMBLES
DEFAULT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class ProbeResult:
    ensemble: str
    ok: bool
    seconds: float
    detail: str  # what answered, or the error
    task: str | None = None


def send(client: VisionClient, ensemble: str, task: str | None = None) -> str:
    """One request through ``ensemble`` (with the call of ``task``, by default the one its outputs
    say); a short description of the answer (``busy: ...`` when the server refused it for load), or
    an exception."""
    try:
        return _answer(client, ensemble, task)
    except ClientError as exc:
        if contract.is_busy(str(exc)):
            return f"busy: refused for load ({str(exc).splitlines()[0][:160]})"
        raise


def _answer(client: VisionClient, ensemble: str, task: str | None) -> str:
    task = task or client.task(ensemble)
    if task == contract.CLASSIFICATION:
        (answer,) = client.classify([PROBE_PNG], top_k=1, ensemble=ensemble)
        return f"top-1 class {answer.class_ids[0]}"
    if task == contract.DETECTION:
        (found,) = client.detect([PROBE_PNG], ensemble=ensemble)
        return f"{len(found)} detection{'' if len(found) == 1 else 's'}"
    if task == contract.SEGMENTATION:
        (mask,) = client.segment([PROBE_PNG], ensemble=ensemble)
        return f"{mask.mask.shape[1]}x{mask.mask.shape[0]} mask"
    if task == contract.PIPELINE:  # the tiny image has no object: its second ensemble is probed on its own
        (found,) = client.pipeline([PROBE_PNG], ensemble=ensemble)
        return f"{len(found)} object{'' if len(found) == 1 else 's'}"
    if task == contract.EMBEDDING:
        (embedding,) = client.embed([PROBE_PNG], ensemble=ensemble)
        return f"{embedding.vector.shape[0]}-d embedding"
    if task == contract.INSTANCE_SEGMENTATION:
        (instances,) = client._in_order(task, [PROBE_PNG], {}, ensemble, None, 1)
        height, width = instances.instance_map.shape
        return f"{len(instances)} instance{'' if len(instances) == 1 else 's'}, {width}x{height} map"
    if task == contract.KEYPOINT_TASK:
        (found,) = client._in_order(task, [PROBE_PNG], {}, ensemble, None, 1)
        return f"{len(found)} detection{'' if len(found) == 1 else 's'} of {len(found.names)} keypoints"
    raise EnsembleMismatchError(
        f"'{ensemble}' answers with no task's outputs (not loaded, or not a triton-vision ensemble)"
    )


def probe(
    url: str | None,
    protocol: str = "grpc",
    ensembles: Sequence[str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    model_prefix: str = "",
) -> list[ProbeResult]:
    """A result per probed ensemble; raises :class:`ClientError` when the server cannot be reached
    or has no ensemble."""
    from tritonclient.utils import InferenceServerException

    results = []
    with VisionClient(
        url, protocol, timeout_s=timeout_s, model_prefix=model_prefix, priority=contract.PROBE_PRIORITY
    ) as client:
        client.check_server()
        if ensembles:
            tasks: dict[str, str | None] = {client.served_name(name): None for name in ensembles}
        else:
            tasks = {info.name: info.task for info in client.ensembles()}
        if not tasks:
            advice = prefix_hint(client)
            raise ClientError(
                f"the server at {client.url} serves no ensemble"
                + (f" named {model_prefix}*" if model_prefix else "")
                + (f"; {advice}" if advice else "")
            )
        for name, known in tasks.items():
            started = time.monotonic()
            task = known
            try:
                task = known or client.task(name)
                detail, ok = send(client, name, task), True
            except (ClientError, InferenceServerException) as exc:
                detail, ok = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__, False
            except Exception as exc:  # noqa: BLE001 - timeouts and transport errors: the probe fails
                detail, ok = f"{type(exc).__name__}: {exc}"[:300], False
            results.append(ProbeResult(name, ok, round(time.monotonic() - started, 3), detail, task))
    return results


def cmd_probe(args) -> int:
    try:
        check_protocol(args.protocol)
        results = probe(args.url, args.protocol, args.ensemble, args.timeout, model_prefix=args.model_prefix)
    except ValueError as exc:  # a malformed --url, a bad protocol: nothing was probed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc), "ensembles": []}))
        else:
            print(f"UNHEALTHY: {exc}", file=sys.stderr)
        return 1
    failed = [r.ensemble for r in results if not r.ok]
    if args.json:
        print(json.dumps({"ok": not failed, "failed": failed, "ensembles": [asdict(r) for r in results]}))
    else:
        for r in results:
            print(f"{r.ensemble}: {'ok' if r.ok else 'FAILED'} ({r.seconds:.2f} s) {r.detail}")
        if failed:
            print(f"UNHEALTHY: {', '.join(failed)} failed", file=sys.stderr)
    return 1 if failed else 0
