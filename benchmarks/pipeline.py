"""Benchmark: the pets_in_scene pipeline against the client-side way, on photos with pets.

``python -m benchmarks.pipeline [--images 36] [--rounds 3] [--concurrency 2]``

Writes the example of ``examples/pets_in_scene`` (the data folder's real YOLOv8n and the pets head on
the real MobileNetV2) into a scratch repository by its README's commands, then runs
``triton-vision bench --ensemble pets_in_scene`` on it (:mod:`triton_vision_bench.pipeline`: both
ways in alternating rounds on one local server) with kitten.jpg, dog.jpg and scikit-image's chelsea,
one pet each. Prints the table; writes ``out/bench/pets_in_scene-pipeline.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pet_photos(folder: Path) -> list[Path]:
    import cv2
    from skimage import data

    from tests.conftest import SHARED

    chelsea = folder / "chelsea.jpg"
    cv2.imwrite(str(chelsea), cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return [SHARED / "images" / "kitten.jpg", SHARED / "images" / "dog.jpg", chelsea]


def build(workdir: Path) -> Path:
    """The example's repository, written by its README's commands (as a user would)."""
    from tests.conftest import SHARED

    examples = workdir / "examples"
    shutil.copytree(ROOT / "examples", examples)
    repository = workdir / "model_repository"
    repository.mkdir()
    shutil.copy(SHARED / "models" / "yolov8n_int8_320.onnx", examples / "pets_in_scene")
    env = {**os.environ, "TRITON_VISION_DATA": str(SHARED)}
    subprocess.run([sys.executable, str(examples / "pets" / "make_pets.py")], check=True, env=env, capture_output=True)
    binary = Path(sys.executable).parent / "triton-vision"
    for spec in ("pets/pets.toml", "pets_in_scene/yolo.toml", "pets_in_scene/pets_in_scene.toml"):
        command = [str(binary), "add-model", str(examples / spec), "--model-repository", str(repository)]
        subprocess.run(command, check=True, capture_output=True)
    return repository


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=36, help="photos per round and way (default 36)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight (default 2)")
    args = parser.parse_args(argv)
    from triton_vision_cli.main import main as triton_vision

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        repository = build(Path(scratch))
        photos = pet_photos(Path(scratch))
        return triton_vision(
            [
                "bench",
                "--ensemble",
                "pets_in_scene",
                "--model-repository",
                str(repository),
                "--images",
                *map(str, photos),
                "--concurrency",
                str(args.concurrency),
                "--pipeline-images",
                str(args.images),
                "--pipeline-rounds",
                str(args.rounds),
                "--out",
                str(ROOT / "out" / "bench"),
            ]
        )


if __name__ == "__main__":
    sys.exit(main())
