"""The UI's test support: one repository with all three ensembles, and a real headless Chromium.

The repository serves the real pretrained classifier from ../shared (as ``resnet18``), the
bright-box detector and the colour-rule segmenter (known answers, fast on two cores).
Chromium is Debian's (``make setup`` installs it); without it the browser tests skip, saying so.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY, SHARED, copy_model_dirs
from tests.support.modelconfigs import step_models
from tests.support.processes import stop

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# What this machine's Chromium needs headless, as root, on a closed network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--window-size=1600,1200",
)
REAL_CLASSIFIER = SHARED / "models" / "mobilenetv2-12-int8.onnx"


def three_ensemble_repository(target: Path) -> Path:
    """classification (the real MobileNetV2 as resnet18), detection (bright box), segmentation (colour rule)."""
    import onnx

    from tests.support.detection import bright_box_detector
    from tests.support.segmentation import colour_rule_fcn
    from triton_vision_authoring import models as model_files
    from triton_vision_models import tensors as t

    names = []
    for ensemble in (t.CLASSIFICATION, t.DETECTION, t.SEGMENTATION):
        names += [ensemble, *step_models(MODEL_REPOSITORY, ensemble)]
    repository = copy_model_dirs(target / "repository", list(dict.fromkeys([*names, t.MODEL_INFO])))
    if not REAL_CLASSIFIER.is_file():
        pytest.skip(f"{REAL_CLASSIFIER} is not available (set TRITON_VISION_DATA to the test data folder)")
    model_files.prepare(repository, model_files.CATALOGUE[t.CLASSIFIER], from_path=REAL_CLASSIFIER)
    detector = target / "bright_box.onnx"
    onnx.save(bright_box_detector(), str(detector))
    model_files.prepare(repository, model_files.CATALOGUE[t.DETECTOR], from_path=detector)
    onnx.save(colour_rule_fcn(), str(repository / t.SEGMENTER / "1" / "model.onnx"))
    return repository


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is missing (Debian's chromium and chromium-driver: `make setup` installs them)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra has it)"
    return None


def start_chromium(profile: Path):
    """A headless Chromium driven by chromedriver, with a fresh profile in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


# -- a scene with known answers for the bright-box detector and the colour-rule segmenter ---------
DARK = 50
WHITE_BOX = (40, 30, 170, 140)  # x1, y1, x2, y2 (exclusive): the detector's one box
DIM_RED = (140, 20, 20)  # red leads by 0.47 > 0.4: "person" to the segmenter; not bright to the detector
GREEN = (20, 230, 20)  # "cat" to the segmenter
PERSON_RECT = (220, 40, 380, 120)
CAT_RECT = (230, 170, 390, 270)
SCENE_SIZE = (300, 420)  # height, width


def scene() -> np.ndarray:
    """RGB uint8: dark, a white rectangle, a dim red one and a green one (see the constants)."""
    height, width = SCENE_SIZE
    image = np.full((height, width, 3), DARK, dtype=np.uint8)
    for (x1, y1, x2, y2), colour in ((WHITE_BOX, (255, 255, 255)), (PERSON_RECT, DIM_RED), (CAT_RECT, GREEN)):
        image[y1:y2, x1:x2] = colour
    return image


def rect_fraction(rect: tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = rect
    return (x2 - x1) * (y2 - y1) / (SCENE_SIZE[0] * SCENE_SIZE[1])


# -- `triton-vision ui` and `serve --ui-port` as subprocesses ----------------------------------------
START_TIMEOUT_S = 240.0
UI_LINE = re.compile(r"^UI: (http://\S+/) ")
SERVING_LINE = re.compile(r"^Ctrl-C stops")  # what ui and serve print once they answer


def ui_url(lines: list[str]) -> str | None:
    for line in lines:
        found = UI_LINE.match(line)
        if found:
            return found.group(1)
    return None


@contextmanager
def running(args: list[str], until: re.Pattern) -> Iterator[list[str]]:
    """``triton-vision ARGS`` until a line of its output matches ``until``; its output lines (they
    keep coming); SIGINT at the end."""
    command = [sys.executable, "-m", "triton_vision_cli", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def collect() -> None:
        for line in process.stdout or ():
            lines.append(line)

    pump = threading.Thread(target=collect, daemon=True)
    pump.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(until.match(line) for line in list(lines)):
            assert process.poll() is None, f"{args[0]} exited with {process.returncode}: {''.join(lines)}"
            assert time.monotonic() < deadline, f"{args[0]} did not start within {START_TIMEOUT_S} s: {''.join(lines)}"
            time.sleep(0.1)
        yield lines
    finally:
        stop(process, signal.SIGINT)
        pump.join(timeout=5)


def serve_args(options, ui_port: int) -> list[str]:
    """``serve`` with ``options`` (a ``ServerOptions``) and the page on ``ui_port``; probes off, so
    that no request but the tests' reaches the models."""
    ports = {"--http-port": options.http_port, "--grpc-port": options.grpc_port, "--metrics-port": options.metrics_port}
    return [
        "serve",
        "--model-repository",
        str(options.model_repository),
        *(item for option, port in ports.items() for item in (option, str(port))),
        *("--probe-interval", "0", "--ui-port", str(ui_port)),
    ]


@contextmanager
def ui_command(*args: str) -> Iterator[tuple[str, list[str]]]:
    """``triton-vision ui ARGS --port 0``: its page's URL once it listens, and its output lines."""
    with running(["ui", *args, "--port", "0"], SERVING_LINE) as lines:
        url = ui_url(lines)
        assert url is not None, "".join(lines)
        yield url, lines
