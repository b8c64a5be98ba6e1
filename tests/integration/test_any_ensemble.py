"""Every client command takes any ensemble of its task: prefixed names (`export-repo --prefix`), a
custom name with its own batch size, `ensembles`, `probe` and `VisionClient.ensembles()`, through
the real tritonserver over gRPC and HTTP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import running_server
from tests.support.cli import cli, encode, jsonl, url_of
from tests.support.detection import bright_rectangle_image
from triton_vision_client.client import VisionClient
from triton_vision_models import tensors as t

pytestmark = pytest.mark.integration


# -- any ensemble of a task: prefixed names, a custom name, its own batch size ----------------------
PREFIX = "tv_"
PETS = "pets"  # a classification ensemble of another name, one image per request


@pytest.fixture(scope="module")
def prefixed_repository(
    classification_repository, bright_box_detection_repository, segmentation_known_answer_repository, tmp_path_factory
) -> Path:
    """The three built-in ensembles and 'pets' (classification's steps, max_batch_size 1), exported
    with `export-repo --prefix tv_`: tv_classification, tv_detection, tv_segmentation, tv_pets."""
    from triton_vision_authoring.export_repo import export_repository

    merged = tmp_path_factory.mktemp("all_tasks_repo")
    for source in (classification_repository, bright_box_detection_repository, segmentation_known_answer_repository):
        shutil.copytree(source, merged, dirs_exist_ok=True)
    shutil.copytree(merged / t.CLASSIFICATION, merged / PETS)
    config = (merged / PETS / "config.pbtxt").read_text()
    config = config.replace('name: "classification"', f'name: "{PETS}"').replace(
        "max_batch_size: 32", "max_batch_size: 1"
    )
    (merged / PETS / "config.pbtxt").write_text(config)
    dest = tmp_path_factory.mktemp("prefixed_repo")
    export_repository(merged, dest, prefix=PREFIX)
    return dest


@pytest.fixture(scope="module")
def prefixed_server(prefixed_repository):
    with running_server(prefixed_repository) as server:
        yield server


def expected_ensembles(repository: Path) -> dict[str, tuple[str, int, list[str]]]:
    """{ensemble: (task, max_batch_size, stand-in steps)} read from the repository's files."""
    from tests.support.modelconfigs import load_config, step_models

    tasks = {t.CLASS_IDS: t.CLASSIFICATION, t.BOXES: t.DETECTION, t.MASK: t.SEGMENTATION}
    configs = {directory.name: load_config(directory) for directory in sorted(repository.iterdir())}
    nested = {step.model_name for config in configs.values() for step in config.ensemble_scheduling.step}
    found = {}
    for name, config in configs.items():
        if config.platform != "ensemble" or name in nested:  # NAME_infer: a step, not called by clients
            continue
        task = next(tasks[o.name] for o in config.output if o.name in tasks)
        steps = step_models(repository, name)
        stand_ins = [
            step
            for step in steps
            if (repository / step / "1" / "model.source.json").is_file()
            and json.loads((repository / step / "1" / "model.source.json").read_text())["kind"] == "stand-in"
        ]
        found[name] = (task, config.max_batch_size, stand_ins)
    return found


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_ensembles_shows_every_ensemble_with_its_task_batch_size_and_stand_ins(
    prefixed_server, prefixed_repository, protocol
):
    expected = expected_ensembles(prefixed_repository)
    assert set(expected) == {f"{PREFIX}{name}" for name in (t.CLASSIFICATION, t.DETECTION, t.SEGMENTATION, PETS)}
    url = url_of(prefixed_server, protocol)
    listed = cli("ensembles", "--url", url, "--protocol", protocol, "--model-prefix", PREFIX, "--json")
    assert listed.returncode == 0, listed.stderr
    answer = json.loads(listed.stdout)
    got = {e["name"]: (e["task"], e["max_batch_size"], e["stand_in"]) for e in answer["ensembles"]}
    assert got == expected
    assert all(e["ready"] for e in answer["ensembles"])
    table = cli("ensembles", "--url", url, "--protocol", protocol, "--model-prefix", PREFIX)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ENSEMBLE", "TASK", "BATCH", "STATE", "STAND-IN", "MODELS"]
    assert lines[1:] == [line for line in lines[1:] if line.split()[0] in expected] and len(lines) == 1 + len(expected)
    pets = next(line for line in lines if line.startswith(f"{PREFIX}{PETS} "))
    assert pets.split() == [f"{PREFIX}{PETS}", "classification", "1", "ready", f"{PREFIX}{t.CLASSIFIER}"]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_without_the_prefix_every_command_names_the_prefix_and_the_ensembles_it_has(
    prefixed_server, prefixed_repository, tmp_path, protocol
):
    """The exported repository served alone: `ensembles`, `probe` and `classify` without
    --model-prefix see its prefixed ensembles (from the loaded models' statistics: `serve` keeps the
    repository index to itself) and say which option to give."""
    url = url_of(prefixed_server, protocol)
    names = ", ".join(sorted(expected_ensembles(prefixed_repository)))
    advice = (
        f"it has {names}: give --model-prefix {PREFIX} (a repository exported with `export-repo --prefix {PREFIX}`)"
    )
    listed = cli("ensembles", "--url", url, "--protocol", protocol)
    assert (listed.returncode, listed.stdout.strip()) == (0, f"the server at {url} has no ensembles; {advice}")
    probed = cli("probe", "--url", url, "--protocol", protocol)
    assert (probed.returncode, probed.stderr.strip()) == (
        1,
        f"UNHEALTHY: the server at {url} serves no ensemble; {advice}",
    )
    image = tmp_path / "a.png"
    image.write_bytes(encode(bright_rectangle_image(60, 80, (10, 10, 40, 40)), ".png"))
    classified = cli("classify", str(image), "--url", url, "--protocol", protocol)
    assert classified.returncode == 3
    assert (
        classified.stderr.strip()
        == f"error: the server at {url} does not serve the 'classification' ensemble; {advice}"
    )


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("command", ["classify", "detect", "segment"])
def test_every_command_calls_the_prefixed_ensemble_of_its_task(prefixed_server, tmp_path, protocol, command):
    image = tmp_path / "box.png"
    image.write_bytes(encode(bright_rectangle_image(150, 200, (40, 30, 120, 90)), ".png"))
    url = url_of(prefixed_server, protocol)
    task = {"classify": t.CLASSIFICATION, "detect": t.DETECTION, "segment": t.SEGMENTATION}[command]
    out = [] if command == "classify" else ["--out", str(tmp_path / "out")]
    plain = cli(command, str(image), *out, "--url", url, "--protocol", protocol)
    assert plain.returncode == 3 and f"does not serve the '{task}' ensemble" in plain.stderr  # only tv_ ones here
    done = cli(
        command, str(image), *out, "--format", "jsonl", "--url", url, "--protocol", protocol, "--model-prefix", PREFIX
    )
    assert done.returncode == 0, done.stderr
    (record,) = jsonl(done.stdout).values()
    assert "error" not in record, record
    assert ("tv_resnet18" in done.stderr) == (command == "classify")  # the stand-in warning names it


def test_a_custom_ensemble_is_called_with_its_own_batch_size(prefixed_server, tmp_path, chelsea_rgb):
    for index in range(3):
        (tmp_path / f"{index}.png").write_bytes(encode(np.roll(chelsea_rgb, index * 7, axis=1), ".png"))
    url = prefixed_server.options.grpc_url
    # Three images, max_batch_size 1: a request of more than one image would be refused by Triton.
    for name in (PETS, f"{PREFIX}{PETS}"):
        done = cli(
            "classify", str(tmp_path), "--ensemble", name, "--model-prefix", PREFIX, "--url", url, "--format", "jsonl"
        )
        assert done.returncode == 0, done.stderr
        records = jsonl(done.stdout)
        assert len(records) == 3 and all("classes" in r for r in records.values())
    too_many = cli(
        "classify", str(tmp_path), "--ensemble", PETS, "--model-prefix", PREFIX, "--url", url, "--batch", "2"
    )
    assert too_many.returncode == 2
    assert f"the '{PREFIX}{PETS}' ensemble takes at most 1 image per request" in too_many.stderr


def test_an_ensemble_of_another_task_is_refused_naming_the_command(prefixed_server, tmp_path, chelsea_rgb):
    image = tmp_path / "a.png"
    image.write_bytes(encode(chelsea_rgb, ".png"))
    url = prefixed_server.options.grpc_url
    done = cli("classify", str(image), "--ensemble", t.SEGMENTATION, "--model-prefix", PREFIX, "--url", url)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        f"error: the '{PREFIX}segmentation' ensemble answers segmentation, not classification: "
        "use `triton-vision segment` (or --ensemble NAME of a classification ensemble)"
    )


def test_probe_checks_every_ensemble_through_the_call_of_its_task(prefixed_server):
    done = cli("probe", "--url", prefixed_server.options.grpc_url, "--model-prefix", PREFIX, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert {(e["ensemble"], e["task"], e["ok"]) for e in answer["ensembles"]} == {
        (f"{PREFIX}{t.CLASSIFICATION}", t.CLASSIFICATION, True),
        (f"{PREFIX}{PETS}", t.CLASSIFICATION, True),
        (f"{PREFIX}{t.DETECTION}", t.DETECTION, True),
        (f"{PREFIX}{t.SEGMENTATION}", t.SEGMENTATION, True),
    }
    only = cli("probe", "--url", prefixed_server.options.grpc_url, "--ensemble", f"{PREFIX}{PETS}")
    assert only.returncode == 0 and only.stdout.startswith(f"{PREFIX}{PETS}: ok ")


def test_ensembles_api_reports_what_the_repository_has(prefixed_server, prefixed_repository):
    from triton_vision_client.discovery import EnsembleInfo

    expected = expected_ensembles(prefixed_repository)
    with VisionClient(prefixed_server.options.grpc_url, model_prefix=PREFIX) as client:
        found = client.ensembles()
    assert all(isinstance(info, EnsembleInfo) for info in found)
    assert {info.name: (info.task, info.max_batch_size, list(info.stand_in)) for info in found} == expected
    assert all(info.ready for info in found)
