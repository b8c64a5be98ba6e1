"""Chaos soak through the real `triton-vision serve` (docs/reliability.md#the-chaos-soak): for CHAOS_S
seconds,
classification, detection and segmentation traffic while model processes, and once tritonserver
itself, are SIGKILLed at random (seeded). Every answer that comes back must be right (compared with
references computed without the server), every failure an explicit error, no call may hang past its
deadline, and the server's memory afterwards must equal its memory before within MEMORY_BOUND_MB.

The models are the fast known-answer ones of conftest.py (the bright-box detector, the colour-rule
segmenter) and the ResNet-18 stand-in, judged against ONNX Runtime in process. Bounded: CHAOS_S
(default 90 s; ``make chaos`` runs it longer) plus start-up, one restart and the recovery."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from tests.conftest import MODEL_REPOSITORY, copy_model_dirs
from tests.integration.test_classification import in_process_probabilities
from tests.support.detection import PERSON, bright_box_detector, bright_rectangle_image, encode
from tests.support.modelconfigs import step_models
from tests.support.processes import children, server_pss_mb
from tests.support.segmentation import colour_rule_fcn, png, synthetic
from tests.support.serve import Serve, serving
from triton_vision_client.client import ClientError, VisionClient
from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration

CHAOS_S = float(os.environ.get("TRITON_VISION_CHAOS_S", "90"))
SEED = int(os.environ.get("TRITON_VISION_CHAOS_SEED", "20261201"))
KILL_EVERY_S = (5.0, 12.0)  # a model process is killed after a random wait in this range
SERVER_KILL_AT = 0.5  # tritonserver itself is killed once, at this fraction of CHAOS_S
DEADLINE_S = 30.0  # every call's deadline
HANG_SLACK_S = 15.0  # a call still running this long after its deadline has hung
RECOVERY_LIMIT_S = 180.0
MEMORY_BOUND_MB = 300.0
BOX_TOLERANCE_PX = 2.0
RECTANGLE = (101, 57, 333, 290)  # x1, y1, x2, y2 in a 517x389 image


@pytest.fixture(scope="module")
def chaos_repository(tmp_path_factory) -> Path:
    """The three built-in ensembles in one repository, with fast models whose answers are known."""
    from triton_vision_authoring import models as model_files

    names = []
    for ensemble in (t.CLASSIFICATION, t.DETECTION, t.SEGMENTATION):
        names += [ensemble, *step_models(MODEL_REPOSITORY, ensemble)]  # NAME_infer and its steps too
    repository = copy_model_dirs(tmp_path_factory.mktemp("chaos_repo"), list(dict.fromkeys([*names, t.MODEL_INFO])))
    model_files.prepare(repository, model_files.CATALOGUE[t.CLASSIFIER], stand_in=True)
    detector = tmp_path_factory.mktemp("bright_box") / "bright_box.onnx"
    onnx.save(bright_box_detector(), str(detector))
    model_files.prepare(repository, model_files.CATALOGUE[t.DETECTOR], from_path=detector)
    onnx.save(colour_rule_fcn(), str(repository / t.SEGMENTER / "1" / "model.onnx"))
    return repository


@dataclass
class Task:
    """One task's request, and the judge of its answer (True: right)."""

    name: str
    call: Callable[[VisionClient], Any]
    right: Callable[[Any], bool]


def tasks(repository: Path, photo: bytes) -> list[Task]:
    probabilities = in_process_probabilities(repository / t.CLASSIFIER / "1" / "model.onnx", [photo])[0]
    top3 = tuple(int(i) for i in np.argsort(-probabilities, kind="stable")[:3])
    boxed = encode(bright_rectangle_image(389, 517, RECTANGLE), ".jpg")
    regions, mask = synthetic(389, 520)
    regions_png = png(regions)

    def box_right(answer) -> bool:
        (found,) = answer
        return found.class_ids == (PERSON,) and bool(np.allclose(found.boxes[0], RECTANGLE, atol=BOX_TOLERANCE_PX))

    return [
        Task(t.CLASSIFICATION, lambda c: c.classify([photo], top_k=3), lambda a: tuple(a[0].class_ids) == top3),
        Task(t.DETECTION, lambda c: c.detect([boxed]), box_right),
        Task(t.SEGMENTATION, lambda c: c.segment([regions_png]), lambda a: bool(np.array_equal(a[0].mask, mask))),
    ]


@dataclass
class Traffic:
    """One thread per task sending its request again and again; what came back, and what is running."""

    url: str
    tasks: list[Task]
    stop: threading.Event = field(default_factory=threading.Event)
    right: dict[str, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # explicit errors: ClientError with a message
    unexplained: list[str] = field(default_factory=list)  # anything else: a failure of the test
    running: dict[str, float] = field(default_factory=dict)  # task -> when its call started
    hung: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for task in self.tasks:
            self.right[task.name] = 0
            thread = threading.Thread(target=self._run, args=(task,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _run(self, task: Task) -> None:
        with VisionClient(self.url, "grpc", timeout_s=DEADLINE_S) as client:
            while not self.stop.is_set():
                self.running[task.name] = time.monotonic()
                try:
                    answer = task.call(client)
                except ClientError as exc:
                    (self.errors if str(exc).strip() else self.unexplained).append(f"{task.name}: {exc!r}"[:300])
                except Exception as exc:  # noqa: BLE001 - not an explicit error: recorded, then asserted
                    self.unexplained.append(f"{task.name}: {type(exc).__name__}: {exc}"[:300])
                else:
                    if task.right(answer):
                        self.right[task.name] += 1
                    else:
                        self.wrong.append(f"{task.name}: {answer!r}"[:300])
                self.running.pop(task.name, None)
                self.stop.wait(0.05)

    def check_hangs(self) -> None:
        now = time.monotonic()
        for name, started in list(self.running.items()):
            if now - started > DEADLINE_S + HANG_SLACK_S and name not in self.hung:
                self.hung.append(name)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=DEADLINE_S + HANG_SLACK_S)
        self.hung += [task.name for task, thread in zip(self.tasks, self.threads, strict=True) if thread.is_alive()]


def model_processes(serve: Serve) -> list[int]:
    try:
        return children(serve.tritonserver_pid())
    except ValueError:  # tritonserver is being restarted: no single child of serve
        return []


def stub_model(pid: int) -> str:
    """The model a model process runs (its first argument is <repository>/<model>/<version>/<file>)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return Path(args[1].decode(errors="replace")).parent.parent.name if len(args) > 1 else "?"


def kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def until_right(url: str, jobs: list[Task], limit_s: float) -> dict[str, str]:
    """Wait (bounded) until every task is answered right once; what is still wrong, by task."""
    left = {task.name: "never answered" for task in jobs}
    deadline = time.monotonic() + limit_s
    while left and time.monotonic() < deadline:
        with VisionClient(url, "grpc", timeout_s=DEADLINE_S) as client:
            for task in jobs:
                if task.name in left:
                    try:
                        if task.right(task.call(client)):
                            left.pop(task.name)
                    except ClientError as exc:
                        left[task.name] = str(exc)[:200]
        time.sleep(1.0)
    return left


def test_answers_stay_right_and_failures_explicit_while_processes_and_tritonserver_are_killed(
    chaos_repository, chelsea_rgb
):
    photo = encode(chelsea_rgb, ".jpg")
    jobs = tasks(chaos_repository, photo)
    rng = random.Random(SEED)
    with serving(chaos_repository, "--probe-interval", "0") as serve:
        assert until_right(serve.grpc_url, jobs, RECOVERY_LIMIT_S) == {}
        before = server_pss_mb(serve.tritonserver_pid())
        traffic = Traffic(serve.grpc_url, jobs)
        traffic.start()
        kills: list[str] = []
        started = time.monotonic()
        server_killed = False
        next_kill = started + rng.uniform(*KILL_EVERY_S)
        try:
            while time.monotonic() - started < CHAOS_S:
                traffic.check_hangs()
                now = time.monotonic()
                if not server_killed and now - started >= SERVER_KILL_AT * CHAOS_S:
                    server_killed = kill(serve.tritonserver_pid())
                    kills.append(f"{now - started:.0f} s: tritonserver")
                elif now >= next_kill:
                    victims = model_processes(serve)
                    if victims:
                        victim = rng.choice(victims)
                        model = stub_model(victim)
                        if kill(victim):
                            kills.append(f"{now - started:.0f} s: {model} (process {victim})")
                    next_kill = now + rng.uniform(*KILL_EVERY_S)
                time.sleep(0.25)
        finally:
            traffic.finish()
        left = until_right(serve.grpc_url, jobs, RECOVERY_LIMIT_S)
        time.sleep(5.0)  # the processes of reloaded models' old instances are gone by then
        after = server_pss_mb(serve.tritonserver_pid())
        figures = {
            "seconds": CHAOS_S,
            "kills": kills,
            "right": traffic.right,
            "errors": len(traffic.errors),
            "memory_before_mb": round(before),
            "memory_after_mb": round(after),
        }
        print(figures, sorted({e.split(":", 2)[-1][:120] for e in traffic.errors})[:8])
        print(serve.log()[-3000:])
        assert server_killed and len(kills) >= 3, figures
        assert traffic.wrong == [], traffic.wrong[:3]
        assert traffic.unexplained == [], traffic.unexplained[:3]
        assert traffic.hung == [], traffic.hung
        assert all(count > 0 for count in traffic.right.values()), figures
        assert left == {}, left
        assert abs(after - before) < MEMORY_BOUND_MB, figures
        assert "restarting tritonserver" in serve.log()
