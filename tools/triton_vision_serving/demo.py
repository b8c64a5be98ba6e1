"""``triton-vision demo``: prepare the model files, serve them, answer photos, stop.

The photos are the ones given (``make demo`` passes the development machines' photos where they
exist); without any, scikit-image's own photos (*chelsea*, a cat; *astronaut*, a person) are
written to ``out/`` and used. Before the answers the demo says, model by model, whether they come
from real pretrained weights (the pinned downloads), from a file the user imported, or from a
stand-in with random weights (meaningless); each task's answers repeat it in their heading. A
stand-in classifier's warning names the one-line import of a real one: the data folder's
MobileNetV2 (``$TRITON_VISION_DATA``, default ``../shared``) where it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import triton_vision_contract as contract
from triton_vision_authoring import models as model_files
from triton_vision_authoring.repository_option import DEFAULT_REPOSITORY
from triton_vision_client.client import VisionClient
from triton_vision_client.images import read_images
from triton_vision_client.tasks import print_answers, warn_stand_ins
from triton_vision_contract.errors import UsageError
from triton_vision_models.provenance import ModelSource
from triton_vision_serving.runtime import LocalTritonServer
from triton_vision_serving.server_config import ServerOptions

OUT = Path("out")
# The data folder of the development machines (real photos and models), as `make` exports it.
DATA_ENV = "TRITON_VISION_DATA"
DEFAULT_DATA = Path("../shared")
REAL_CLASSIFIER = "models/mobilenetv2-12-int8.onnx"  # under the data folder: ImageNet's 1000 classes, 224x224


def scikit_image_photo(name: str) -> Path:
    """One of scikit-image's photos (``chelsea``, ``astronaut``) as a PNG in ``out/``."""
    import cv2
    from skimage import data

    path = OUT / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2BGR))
    return path


# Each built-in ensemble's ONNX model: whose weights its answers come from.
TASK_MODELS = {
    contract.CLASSIFICATION: contract.CLASSIFIER,
    contract.SEGMENTATION: contract.SEGMENTER,
    contract.DETECTION: contract.DETECTOR,
}


def prepare_models(repository: Path) -> dict[str, ModelSource]:
    """Every catalogued model the repository has, put in place; {model: where its file came from}."""
    prepared = {}
    for name, entry in model_files.CATALOGUE.items():
        if name == entry.name and (repository / name / "config.pbtxt").is_file():
            prepared[name] = model_files.prepare(repository, entry, report=lambda m: print(m, file=sys.stderr))
    return prepared


def verdict(source: ModelSource) -> str:
    """Whether a model's answers are real, in a few words."""
    if source.is_stand_in:
        return "STAND-IN, random weights: meaningless answers"
    if source.kind == "download":
        return "real: pretrained weights"
    return "your file: as real as its weights"


def which_answers_are_real(prepared: dict[str, ModelSource]) -> list[str]:
    """One line per model: real pretrained weights, an imported file, or a stand-in, and where from."""
    lines = ["which answers are real:"]
    for name, source in prepared.items():
        entry = model_files.CATALOGUE[name]
        task = next((task for task, model in TASK_MODELS.items() if model == name), None)
        served = f"{name} ({task})" if task else name
        if source.is_stand_in:
            small = f" ({model_files.SMALL_GRAPH_NOTE})" if model_files.is_small_graph(source) else ""
            lines.append(
                f"  {served}: {verdict(source)}{small}; the real {entry.description}: with the network, "
                f"`triton-vision models prepare --model {name} --force`"
            )
        elif source.kind == "download":
            lines.append(f"  {served}: {verdict(source)}, {entry.description} ({source.describe()})")
        else:
            lines.append(f"  {served}: {verdict(source)} ({source.describe()})")
    return lines


def heading(task: str, prepared: dict[str, ModelSource]) -> str:
    model = TASK_MODELS[task]
    source = prepared.get(model)
    return f"{task} ({model}: {verdict(source) if source is not None else 'not prepared by the demo'}):"


def check_photos(paths: Sequence[str]) -> None:
    """Refuse a photo that is not there (as the folder jobs say it) before anything is prepared or started."""
    for path in paths:
        if not Path(path).exists():
            raise UsageError(f"no such file or directory: {path}")
        if Path(path).is_dir():
            raise UsageError(f"{path} is a directory: the demo takes photo files")


def stand_in_advice(repository: Path, data: Path) -> str:
    """The one-line import that replaces the stand-in classifier: of the data folder's MobileNetV2
    where ``data`` has it (named, not imported: the user chooses), else of a file of the user's."""
    option = "" if repository == DEFAULT_REPOSITORY else f" --model-repository {repository}"
    real = data / REAL_CLASSIFIER
    if real.is_file():
        command = f"triton-vision models prepare --model {contract.CLASSIFIER} --from {real}{option}"
        return (
            f"  the data folder has the real MobileNetV2: `{command}` serves it in {contract.CLASSIFIER}'s place "
            "(then run the demo again)"
        )
    return (
        f"  `triton-vision models prepare --model {contract.CLASSIFIER} --from FILE.onnx{option}` serves a "
        "classifier of your own in its place (1000 ImageNet classes, 3x224x224 input)"
    )


def run_demo(options: ServerOptions, *, images: Sequence[str], people: Sequence[str] | None, top_k: int) -> int:
    check_photos([*images, *(people or [])])
    repository = options.model_repository
    prepared = prepare_models(repository)
    print("\n".join(which_answers_are_real(prepared)))
    photos = list(images) or [str(scikit_image_photo("chelsea"))]
    group_photos = list(people or images) or [str(scikit_image_photo("astronaut"))]
    with LocalTritonServer(options) as server, VisionClient(options.grpc_url, "grpc") as client:
        print(f"tritonserver ready: gRPC {options.grpc_url}, HTTP {options.http_url} (log: {server.log_path})")
        if warn_stand_ins(client, [contract.CLASSIFIER]):
            print(stand_in_advice(repository, Path(os.environ.get(DATA_ENV) or DEFAULT_DATA)), file=sys.stderr)
        print(heading(contract.CLASSIFICATION, prepared))
        print_answers(contract.CLASSIFICATION, photos, client.classify(read_images(photos), top_k=top_k))
        if (repository / contract.SEGMENTATION).is_dir():
            warn_stand_ins(client, [contract.SEGMENTER])
            segments = client.segment(read_images(group_photos), overlay=True)
            print(heading(contract.SEGMENTATION, prepared))
            print_answers(contract.SEGMENTATION, group_photos, segments, out=OUT)
        if (repository / contract.DETECTION).is_dir():
            encoded = read_images(group_photos)
            warn_stand_ins(client, [contract.DETECTOR])
            print(heading(contract.DETECTION, prepared))
            print_answers(contract.DETECTION, group_photos, client.detect(encoded), encoded=encoded, out=OUT)
    return 0
