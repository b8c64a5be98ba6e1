"""``triton-vision probe``: is every ensemble of a server answering? (a liveness/readiness probe)

Sends one tiny embedded image through each ensemble the server has (or those named) and exits 0
when every one answers, 1 naming the ones that do not (2 for a usage error). Built for Docker
``HEALTHCHECK`` and Kubernetes exec probes (``triton-vision probe --url 127.0.0.1:8001``): unlike
``/v2/health/ready``, which Triton keeps answering 200 while a model's process is dead, a probe
that fails means a request would fail.

Which ensembles a server has: the model-repository index is restricted, so the probe asks the
``model_info`` model for the repository's ensembles (loaded or not: one that failed to load fails
the probe). Without model_info it asks each ensemble of the wire contract for its metadata and
skips those the server has never heard of.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import triton_vision_contract as t

from .client import ClientError, VisionClient

# A 32x32 RGB PNG (colour gradient), 105 bytes: decodes with every decoder the ensembles use.
PROBE_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAAAMElEQVRIx+3NMQoAIAwEsBMc+v/3FtRH2C2QPesknZqzu14wSCAQ"
    "CAQCgUAgEPxyAe8N8p52LsWdAAAAAElFTkSuQmCC"
)
ENSEMBLES = (t.CLASSIFICATION, t.DETECTION, t.SEGMENTATION)
DEFAULT_TIMEOUT_S = 20.0
# Triton's metadata error for a model name its repository does not have at all.
UNKNOWN_MODEL_PHRASES = ("unknown model", "not found")


@dataclass(frozen=True)
class ProbeResult:
    ensemble: str
    ok: bool
    seconds: float
    detail: str  # what answered, or the error


def send(client: VisionClient, ensemble: str) -> str:
    """One request through ``ensemble``; a short description of the answer, or an exception."""
    if ensemble == t.CLASSIFICATION:
        (answer,) = client.classify([PROBE_PNG], top_k=1)
        return f"top-1 class {answer.class_ids[0]}"
    if ensemble == t.DETECTION:
        (found,) = client.detect([PROBE_PNG])
        return f"{len(found)} detections"
    if ensemble == t.SEGMENTATION:
        (mask,) = client.segment([PROBE_PNG])
        return f"{mask.mask.shape[1]}x{mask.mask.shape[0]} mask"
    raise ValueError(f"unknown ensemble '{ensemble}' (known: {', '.join(ENSEMBLES)})")


def server_has(client: VisionClient, ensemble: str) -> bool:
    """False only when the server says it has no model of that name at all."""
    from tritonclient.utils import InferenceServerException

    try:
        client.model_metadata(client.model_prefix + ensemble)
        return True
    except InferenceServerException as exc:
        message = (exc.message() or str(exc)).lower()
        if any(phrase in message for phrase in UNKNOWN_MODEL_PHRASES) and "version" not in message:
            return False
        return True  # known but unavailable: the probe through it will fail and say why


def probe(
    url: str | None,
    protocol: str = "grpc",
    ensembles: Sequence[str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    model_prefix: str = "",
) -> list[ProbeResult]:
    """A result per probed ensemble; raises :class:`ClientError` when the server cannot be reached."""
    from tritonclient.utils import InferenceServerException

    results = []
    with VisionClient(url, protocol, timeout_s=timeout_s, model_prefix=model_prefix) as client:
        try:
            live = client.server_live()
        except InferenceServerException as exc:
            raise ClientError(f"cannot reach the server at {client.url}: {exc.message() or exc}") from None
        except Exception as exc:  # noqa: BLE001 - connection errors differ between gRPC and HTTP
            raise ClientError(f"cannot reach the server at {client.url}: {exc}") from None
        if not live:
            raise ClientError(f"the server at {client.url} is not live")
        if ensembles:
            names = list(ensembles)
        else:
            listed = client.repository_ensembles()
            if listed is None:
                names = [e for e in ENSEMBLES if server_has(client, e)]
            else:
                names = [e for e in ENSEMBLES if model_prefix + e in listed]
        if not names:
            raise ClientError(f"the server at {client.url} serves none of {', '.join(ENSEMBLES)}")
        for name in names:
            started = time.monotonic()
            try:
                detail, ok = send(client, name), True
            except (ClientError, InferenceServerException) as exc:
                detail, ok = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__, False
            except Exception as exc:  # noqa: BLE001 - timeouts and transport errors: the probe fails
                detail, ok = f"{type(exc).__name__}: {exc}"[:300], False
            results.append(ProbeResult(name, ok, round(time.monotonic() - started, 3), detail))
    return results


def cmd_probe(args) -> int:
    unknown = [name for name in args.ensemble or [] if name not in ENSEMBLES]
    if unknown:
        print(f"error: unknown ensemble {', '.join(unknown)} (known: {', '.join(ENSEMBLES)})", file=sys.stderr)
        return 2
    try:
        results = probe(args.url, args.protocol, args.ensemble, args.timeout, model_prefix=args.model_prefix)
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
