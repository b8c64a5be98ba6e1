"""A thin client for the triton-vision ensembles over gRPC or HTTP (``tritonclient``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

import triton_vision_contract as t

from .images import pack_images
from .segmentation import Segmentation, split_outputs

PROTOCOLS = ("grpc", "http")
DEFAULT_URLS = {"grpc": "127.0.0.1:8001", "http": "127.0.0.1:8000"}


class ClientError(RuntimeError):
    """The server refused or failed a request; the message is the server's."""


@dataclass(frozen=True)
class Classification:
    """Top-k answer for one image, best first."""

    class_ids: tuple[int, ...]
    scores: tuple[float, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Detections:
    """COCO detections for one image, best first; boxes are x1, y1, x2, y2 in the image's pixels."""

    boxes: tuple[tuple[float, float, float, float], ...]
    scores: tuple[float, ...]
    class_ids: tuple[int, ...]  # COCO category ids, 91-id numbering (1 = person)
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.scores)


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def split_detections(out: Mapping[str, np.ndarray]) -> list[Detections]:
    """A detection response (B images, rows padded to the largest COUNT) as B :class:`Detections`."""
    results = []
    for row, count in enumerate(out[t.COUNT].reshape(-1)):
        n = int(count)
        results.append(
            Detections(
                boxes=tuple(
                    (float(x1), float(y1), float(x2), float(y2))
                    for x1, y1, x2, y2 in out[t.BOXES][row].reshape(-1, 4)[:n]
                ),
                scores=tuple(float(s) for s in out[t.SCORES][row][:n]),
                class_ids=tuple(int(i) for i in out[t.CLASS_IDS][row][:n]),
                labels=tuple(_decode(label) for label in out[t.LABELS][row][:n]),
            )
        )
    return results


def split_classifications(out: Mapping[str, np.ndarray]) -> list[Classification]:
    return [
        Classification(
            class_ids=tuple(int(i) for i in ids),
            scores=tuple(float(s) for s in scores),
            labels=tuple(_decode(label) for label in labels),
        )
        for ids, scores, labels in zip(out[t.CLASS_IDS], out[t.SCORES], out[t.LABELS], strict=True)
    ]


class VisionClient:
    """Sends encoded image bytes to an ensemble and returns its outputs as NumPy arrays."""

    def __init__(
        self, url: str | None = None, protocol: str = "grpc", *, timeout_s: float = 120.0, model_prefix: str = ""
    ) -> None:
        """``model_prefix``: the prefix of a repository from ``triton-vision export-repo --prefix``;
        the ensembles and ``model_info`` are then called ``<prefix><name>``."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got '{protocol}'")
        self.protocol = protocol
        self.url = url or DEFAULT_URLS[protocol]
        self.timeout_s = timeout_s
        self.model_prefix = model_prefix
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
        self._module = module
        if protocol == "http":
            self._client = module.InferenceServerClient(
                self.url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            self._client = module.InferenceServerClient(self.url)

    def server_live(self) -> bool:
        return bool(self._client.is_server_live())

    def model_metadata(self, model: str) -> Any:
        """The model's metadata; raises ``InferenceServerException`` (unknown or unavailable model)."""
        return self._client.get_model_metadata(model)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> VisionClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def infer(
        self,
        model: str,
        images: Sequence[bytes],
        outputs: Sequence[str],
        parameters: Mapping[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """One request: ``images`` travel as one padded UINT8 batch on input IMAGE."""
        from tritonclient.utils import InferenceServerException

        batch = pack_images(images)
        tensor = self._module.InferInput(t.IMAGE, list(batch.shape), "UINT8")
        tensor.set_data_from_numpy(batch)
        requested = [self._module.InferRequestedOutput(name) for name in outputs]
        kwargs: dict[str, Any] = {"parameters": dict(parameters)} if parameters else {}
        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout_s
        try:
            result = self._client.infer(model, [tensor], outputs=requested, **kwargs)
        except InferenceServerException as exc:
            raise ClientError(exc.message() or str(exc)) from None
        return {name: result.as_numpy(name) for name in outputs}

    def infer_in_batches(
        self,
        model: str,
        images: Sequence[bytes],
        outputs: Sequence[str],
        parameters: Mapping[str, Any] | None,
        split: Callable[[Mapping[str, np.ndarray]], list],
        *,
        batch: int,
        concurrency: int = 1,
    ) -> list:
        """``images`` in requests of at most ``batch`` (the ensemble's max_batch_size), one result
        per image in order; over gRPC up to ``concurrency`` requests at once, over HTTP one by one."""
        if not images:
            raise ValueError("no images to send")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")

        def one_request(chunk: Sequence[bytes]) -> list:
            return split(self.infer(model, chunk, outputs, parameters))

        chunks = [images[start : start + batch] for start in range(0, len(images), batch)]
        workers = max(1, min(concurrency, len(chunks))) if self.protocol == "grpc" else 1
        if workers == 1:
            answers = [one_request(chunk) for chunk in chunks]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                answers = list(pool.map(one_request, chunks))
        return [result for answer in answers for result in answer]

    def classify(
        self, images: Sequence[bytes], top_k: int | None = None, *, batch: int = t.CLASSIFICATION_MAX_BATCH
    ) -> list[Classification]:
        parameters = {t.TOP_K: int(top_k)} if top_k is not None else None
        return self.infer_in_batches(
            self.model_prefix + t.CLASSIFICATION,
            images,
            (t.CLASS_IDS, t.SCORES, t.LABELS),
            parameters,
            split_classifications,
            batch=batch,
        )

    def detect(
        self,
        images: Sequence[bytes],
        score_threshold: float | None = None,
        max_detections: int | None = None,
        *,
        batch: int = t.DETECTION_MAX_BATCH,
        concurrency: int = 2,
    ) -> list[Detections]:
        """One :class:`Detections` per image, in order; ``batch`` images per request.

        Over gRPC up to ``concurrency`` requests run at once; over HTTP one after another. Each
        image's rows are cut to its COUNT (the server pads a request to its largest COUNT).
        """
        parameters: dict[str, Any] = {}
        if score_threshold is not None:
            parameters[t.SCORE_THRESHOLD] = float(score_threshold)
        if max_detections is not None:
            parameters[t.MAX_DETECTIONS] = int(max_detections)
        outputs = (t.BOXES, t.SCORES, t.CLASS_IDS, t.LABELS, t.COUNT)
        return self.infer_in_batches(
            self.model_prefix + t.DETECTION,
            images,
            outputs,
            parameters,
            split_detections,
            batch=batch,
            concurrency=concurrency,
        )

    def segment(
        self, images: Sequence[bytes], overlay: bool = False, *, batch: int = t.SEGMENTATION_MAX_BATCH
    ) -> list[Segmentation]:
        """One :class:`Segmentation` per image (mask at the image's own size); ``batch`` images a request."""
        outputs = (t.MASK, t.MASK_SIZE, t.CLASS_FRACTIONS, t.LABELS, t.OVERLAY)
        return self.infer_in_batches(
            self.model_prefix + t.SEGMENTATION,
            images,
            outputs,
            {t.OVERLAY_PARAMETER: bool(overlay)},
            split_outputs,
            batch=batch,
        )

    def model_info(self, query: str) -> Any:
        """The ``model_info`` model's JSON answer to ``query``; None if the server has no model_info."""
        from tritonclient.utils import InferenceServerException

        try:
            model_info = self.model_prefix + t.MODEL_INFO
            if not self._client.is_model_ready(model_info):
                return None
            tensor = self._module.InferInput(t.INFO_QUERY, [1], "BYTES")
            tensor.set_data_from_numpy(np.array([query.encode("utf-8")], dtype=np.object_))
            result = self._client.infer(model_info, [tensor])
            return json.loads(_decode(result.as_numpy(t.INFO_JSON)[0]))
        except (InferenceServerException, ValueError):
            return None

    def model_sources(self) -> dict[str, dict[str, str]]:
        """What the server's ``model_info`` model says about its ONNX files ({} if it has none)."""
        answer = self.model_info(t.INFO_SOURCES)
        return answer if isinstance(answer, dict) else {}

    def repository_ensembles(self) -> list[str] | None:
        """The ensembles of the server's repository, loaded or not (None without model_info)."""
        answer = self.model_info(t.INFO_ENSEMBLES)
        return [str(name) for name in answer] if isinstance(answer, list) else None

    def stand_in_warnings(self, models: Sequence[str]) -> list[str]:
        sources = self.model_sources()
        return [
            f"WARNING: the served '{self.model_prefix}{name}' is a stand-in with random weights: "
            "its answers are meaningless"
            for name in models
            if sources.get(self.model_prefix + name, {}).get("kind") == "stand-in"
        ]
