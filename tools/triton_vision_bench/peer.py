"""The server a user would write instead of the ensemble: the bench's peer.

A Starlette app under uvicorn with N worker processes (uvicorn's own ``--workers``: one listening
socket, the kernel hands each connection to a worker). One encoded image per POST; each worker
decodes it with OpenCV, preprocesses it by the ensemble's own spec rule
(:func:`triton_vision_models.preprocessing.network_input`), runs ONNX Runtime on the same ONNX
file with one intra-op thread, and runs the post-processing the ensemble's task does (the task's
runner from :mod:`triton_vision_models`, configured by the ensemble's post-processing config), and
answers JSON. The handler is ``async`` and does its work inline: one request at a time per worker,
so N workers are N images in flight, each on one core; that is what the forty-line server does.

Run: ``python -m triton_vision_bench.peer --repository DIR --ensemble NAME --port P [--workers 2]
[--device cuda]`` (``cuda``: ONNX Runtime's CUDA execution provider; OpenCV still decodes on the CPU).
What the handler does is :meth:`PeerModel.answer`: pure apart from the session it is given.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from triton_vision_models import tensors as t
from triton_vision_models.errors import InvalidInputError
from triton_vision_models.model_config import ModelConfig, RequestData
from triton_vision_models.preprocessing import PreprocessSpec, network_input
from triton_vision_models.repository import ModelRepository

ENV = "TRITON_VISION_PEER"  # the app factory's settings (JSON), as uvicorn's workers import it by name
PATH = "/infer"
LIST_AT_MOST = 4096  # larger arrays (a segmentation mask) travel as PNG, as a user would send them
Session = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]  # ONNX inputs -> outputs
Postprocess = Callable[[Sequence[RequestData]], list[dict[str, np.ndarray]]]

TASKS = (t.CLASSIFICATION, t.DETECTION, t.SEGMENTATION)  # the tasks the peer has a post-processing for
# Where each post-processing input comes from: the model's output, a preprocessing output, the encoded image.
MODEL, PREPROCESSING, IMAGE = "model", "preprocessing", "image"


@dataclass(frozen=True)
class Wiring:
    """What the peer runs, read from the ensemble: the ONNX inputs and what feeds the post-processing."""

    model_path: Path
    model_inputs: dict[str, str]  # ONNX input -> preprocessing output (PIXELS, ...)
    post_model: str  # the ensemble's post-processing model (its config sets the runner up)
    post_inputs: dict[str, tuple[str, str]]  # its input -> (MODEL, ONNX output) | (PREPROCESSING, name) | (IMAGE, "")


def _producer(repository: ModelRepository, ensemble: str, tensor: str) -> tuple[str, str]:
    """(model, output) that makes ``tensor`` in ``ensemble``, nested ensembles followed; ("", tensor) for
    an input of the ensemble."""
    for step in repository[ensemble].config.ensemble_scheduling.step:
        for output, value in step.output_map.items():
            if value == tensor:
                if repository[step.model_name].is_ensemble:
                    return _producer(repository, step.model_name, output)
                return step.model_name, output
    return "", tensor


def wiring(repository: ModelRepository, ensemble: str, model: str, model_path: Path, model_inputs: dict) -> Wiring:
    """The peer's wiring for ``ensemble`` whose ONNX step is ``model`` (the bench's profile found it)."""
    for step in reversed(list(repository[ensemble].config.ensemble_scheduling.step)):
        sources = {name: _producer(repository, ensemble, tensor) for name, tensor in step.input_map.items()}
        if any(source == model for source, _ in sources.values()):
            post: dict[str, tuple[str, str]] = {}
            for name, (source, output) in sources.items():
                kind = MODEL if source == model else (IMAGE if not source else PREPROCESSING)
                post[name] = (kind, output if kind != IMAGE else "")
            return Wiring(model_path, dict(model_inputs), step.model_name, post)
    raise ValueError(f"ensemble '{ensemble}' has no step after '{model}' that reads its outputs")


def model_config(repository: ModelRepository, name: str) -> ModelConfig:
    """The config a Python model gets from Triton's ``args``, read from the repository."""
    from google.protobuf import json_format

    config = json_format.MessageToDict(repository[name].config, preserving_proto_field_name=True)
    args = {"model_config": json.dumps(config), "model_repository": str(repository[name].directory)}
    return ModelConfig.from_triton_args({**args, "model_version": "1", "model_instance_kind": "CPU"})


def postprocessor(task: str, config: ModelConfig) -> Postprocess:
    """The task's runner, as the ensemble's post-processing model makes it."""
    if task == t.CLASSIFICATION:
        from triton_vision_models.classification import ClassificationPostprocessor

        return ClassificationPostprocessor.from_config(config)
    if task == t.DETECTION:
        from triton_vision_models.detection import DetectionPostprocessor

        return DetectionPostprocessor.from_config(config)
    if task == t.SEGMENTATION:
        from triton_vision_models.segmentation import SegmentationPostprocessor

        return SegmentationPostprocessor.from_config(config)
    raise ValueError(f"the peer knows no post-processing for task '{task}'")


def jsonable(value: np.ndarray) -> Any:
    """A list for small arrays (bytes as text); a base64 PNG for a large one (a mask), as a user would."""
    if value.dtype == np.object_:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value.ravel().tolist()]
    if value.size > LIST_AT_MOST and value.dtype == np.uint8 and value.ndim >= 2:
        import cv2

        ok, png = cv2.imencode(".png", value.reshape(value.shape[-2], value.shape[-1]))
        if ok:
            return {"png_base64": base64.b64encode(png.tobytes()).decode("ascii"), "shape": list(value.shape)}
    return value.tolist()


@dataclass
class PeerModel:
    """One worker's model: the spec's preprocessing, an ONNX Runtime session, the task's post-processing."""

    pre: PreprocessSpec
    wiring: Wiring
    session: Session
    post: Postprocess

    def answer(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for one POSTed encoded image: 200 with the post-processing's
        outputs, 400 naming what is wrong with the image."""
        if not body:
            return 400, {"error": "the request body is empty: POST one encoded image (JPEG or PNG)"}
        try:
            made = network_input(body, self.pre)
        except InvalidInputError as exc:
            return 400, {"error": str(exc)}
        pre = {
            t.PIXELS: made.pixels[None],
            t.ORIGINAL_SIZE: np.array([made.original], dtype=np.int64),
            t.RESIZED_SIZE: np.array([made.resized], dtype=np.int64),
        }
        outputs = self.session({name: pre[source] for name, source in self.wiring.model_inputs.items()})
        inputs: dict[str, np.ndarray] = {}
        for name, (kind, source) in self.wiring.post_inputs.items():
            if kind == MODEL:
                inputs[name] = np.asarray(outputs[source])
            elif kind == PREPROCESSING:
                inputs[name] = pre[source]
            else:
                inputs[name] = np.frombuffer(body, np.uint8)[None]
        try:
            answer = self.post([RequestData(inputs)])[0]
        except InvalidInputError as exc:
            return 400, {"error": str(exc)}
        return 200, {name: jsonable(value[0]) for name, value in answer.items()}


DEVICES = ("cpu", "cuda")


def ort_session(path: Path, threads: int, device: str = "cpu") -> Session:
    """ONNX Runtime with ``threads`` intra-op threads, on the CPU or (``cuda``) CUDA's execution provider
    first: inputs -> {output name: array}."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError("the peer was asked for CUDA, and this onnxruntime has no CUDAExecutionProvider")
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    names = [o.name for o in session.get_outputs()]

    def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, dict(inputs)), strict=True))

    return run


def load_peer(repository_path: Path, ensemble: str, threads: int = 1, device: str = "cpu") -> PeerModel:
    from triton_vision_bench.profiles import profile

    repository = ModelRepository.load(repository_path)
    chosen = profile(repository, ensemble)
    wired = wiring(repository, ensemble, chosen.model, chosen.model_path, chosen.model_inputs)
    post = postprocessor(chosen.task, model_config(repository, wired.post_model))
    return PeerModel(chosen.pre, wired, ort_session(chosen.model_path, threads, device), post)


def create_app():
    """The Starlette app (uvicorn's factory): settings from ``$TRITON_VISION_PEER``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    settings = json.loads(os.environ[ENV])
    peer = load_peer(
        Path(settings["repository"]), settings["ensemble"], int(settings.get("threads", 1)), settings["device"]
    )

    async def infer(request: Request) -> JSONResponse:
        status, body = peer.answer(await request.body())
        return JSONResponse(body, status_code=status)

    async def health(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route(PATH, infer, methods=["POST"]), Route("/health", health)])


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m triton_vision_bench.peer", description=__doc__)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--ensemble", default=t.CLASSIFICATION)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per worker")
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="ONNX Runtime's device (cuda: ORT CUDA)")
    args = parser.parse_args(argv)
    settings = {
        "repository": str(args.repository.resolve()),
        "ensemble": args.ensemble,
        "threads": args.threads,
        "device": args.device,
    }
    os.environ[ENV] = json.dumps(settings)
    uvicorn.run(
        "triton_vision_bench.peer:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
