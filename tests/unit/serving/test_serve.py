"""``serve``'s decisions that need no running server: what it refuses before starting, what it
reports, when it restarts a dead tritonserver and when it gives up; the server commands' usage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
from pathlib import Path

import pytest

from tests.conftest import ensemble_repository, torchvision_detection_repository
from triton_vision_authoring.errors import RepositoryUnusableError
from triton_vision_cli.main import main
from triton_vision_models import tensors as t
from triton_vision_serving.errors import PortInUseError
from triton_vision_serving.ports import check_ports, free_port
from triton_vision_serving.serve import CrashHistory, RestartPolicy, report_model_files, servable_repository
from triton_vision_serving.server_config import ServerOptions


# -- restarts -------------------------------------------------------------------------------------
def test_restarts_back_off_doubling_and_give_up_at_five_deaths_within_the_window():
    now = [0.0]
    history = CrashHistory(RestartPolicy(), clock=lambda: now[0])
    delays = []
    for _ in range(4):
        delays.append(history.record())
        now[0] += 20.0
    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert history.record() is None  # the fifth death within 300 s
    assert RestartPolicy().describe() == "5 deaths within 300 s"


def test_deaths_older_than_the_window_are_forgotten():
    now = [0.0]
    history = CrashHistory(RestartPolicy(), clock=lambda: now[0])
    for _ in range(4):
        history.record()
        now[0] += 100.0  # one death every 100 s: never 5 within 300 s
    assert history.record() == 4.0  # at 400 s: the deaths at 200, 300 and 400 s are within 300 s
    now[0] += 1000.0
    assert history.record() == 1.0


# -- before starting -------------------------------------------------------------------------------
@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_ctrl_c_after_ready_stops_tritonserver_and_exits_130_a_sigterm_0(tmp_path, monkeypatch, capsys, sent, code):
    """Ctrl-C exits 130 whenever it comes, as during start-up; SIGTERM once serving is the service
    stopped as asked (0). tritonserver and the supervisor are fakes: the signal comes at the first tick."""
    from triton_vision_serving import serve as module

    stopped = []

    class FakeServer:
        log_path = tmp_path / "tritonserver.log"
        process = None
        served_repository = tmp_path
        overlay = None

        def wait_settled(self, timeout, should_stop) -> None:
            pass

        def exited(self) -> bool:
            return False

        def stop(self, timeout=None) -> None:
            stopped.append(timeout)

    class FakeSupervisor:
        def __init__(self, server, **settings) -> None:
            pass

        def start(self) -> list:
            return []

        def tick(self) -> None:
            os.kill(os.getpid(), sent)

    def start(self, generation):
        self.server = FakeServer()
        return self.server

    monkeypatch.setattr(module.Serve, "_start", start)
    monkeypatch.setattr(module, "Supervisor", FakeSupervisor)
    options = ServerOptions.on_free_ports(ensemble_repository(tmp_path / "repo", t.CLASSIFICATION))
    assert module.Serve(module.ServeSettings(options)).run() == code
    out = capsys.readouterr().out
    assert "Ctrl-C stops the server." in out and stopped
    stopping = "interrupted: stopping tritonserver ..." if code else "stopping tritonserver ..."
    assert out.splitlines()[-2:] == [stopping, "stopped"]


def test_an_empty_repository_is_refused_at_once_naming_what_to_do(tmp_path):
    with pytest.raises(RepositoryUnusableError) as refused:
        servable_repository(ServerOptions(tmp_path))
    assert str(refused.value) == (
        f"model repository {tmp_path} has no ensemble (it is empty): there is nothing for a client to call; "
        f"`triton-vision check {tmp_path}` says what it holds"
    )


def test_a_missing_repository_is_refused(tmp_path):
    with pytest.raises(RepositoryUnusableError, match="does not exist"):
        servable_repository(ServerOptions(tmp_path / "nowhere"))


def test_serve_command_on_an_empty_repository_exits_2_before_starting_anything(tmp_path, capsys):
    ports = [str(free_port()) for _ in range(3)]
    code = main(["serve", "--model-repository", str(tmp_path), "--http-port", ports[0]])
    assert code == 2
    assert capsys.readouterr().err.startswith(f"error: model repository {tmp_path} has no ensemble")


def test_check_reports_a_repository_without_an_ensemble_as_a_problem(tmp_path, capsys):
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"PROBLEM: {tmp_path}: has no ensemble (no model): a client would have nothing to call",
        f"{tmp_path}: 0 models checked, 1 problem",
    ]


def test_a_port_in_use_is_named_with_the_option_that_changes_it():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        options = {"--http-port": free_port(), "--grpc-port": port, "--metrics-port": free_port()}
        with pytest.raises(PortInUseError) as refused:
            check_ports("127.0.0.1", options)
    assert str(refused.value) == (
        f"port {port} on 127.0.0.1 (--grpc-port) is already in use, perhaps by another server: stop it "
        f"(`ss -ltnp 'sport = :{port}'` shows what listens there) or choose another with --grpc-port"
    )
    check_ports("127.0.0.1", options)  # closed again: free


def test_the_same_port_twice_is_refused():
    port = free_port()
    with pytest.raises(Exception, match=f"--grpc-port and --http-port are both {port}"):
        check_ports("127.0.0.1", {"--http-port": port, "--grpc-port": port})


def test_serve_lists_the_ensembles_and_warns_for_stand_ins_whatever_their_names(tmp_path, capsys):
    """An exported (prefixed) repository: the reader finds its ensembles and its ONNX models."""
    from triton_vision_authoring import models as model_files
    from triton_vision_authoring.export_repo import export_repository

    source = ensemble_repository(tmp_path / "source", t.CLASSIFICATION)
    model_files.prepare(source, model_files.CATALOGUE[t.CLASSIFIER], stand_in=True)
    export_repository(source, tmp_path / "exported", prefix="tv_")
    repository = servable_repository(ServerOptions(tmp_path / "exported"))
    assert repository.ensembles == ["tv_classification"]
    report_model_files(repository)
    err = capsys.readouterr().err
    assert "WARNING: tv_resnet18 is a STAND-IN with random weights (not pretrained" in err


# -- the commands' usage -------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["serve", "models", "check", "demo", "model-analyzer", "export-repo"])
def test_server_commands_describe_themselves_in_their_help(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert not description.startswith(("positional", "options")), text


def test_serve_help_shows_the_default_ports_and_log_directory(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for what, port in (("HTTP", 8000), ("gRPC", 8001), ("metrics", 8002)):
        assert f"{what} port (default: {port})" in text
    assert "default: $TRITON_VISION_LOG_DIR" in text


def test_demo_honours_given_ports_and_picks_free_ones_for_the_others(monkeypatch, tmp_path):
    from triton_vision_serving import demo

    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda options, **kwargs: seen.append(options) or 0)
    assert main(["demo", "--http-port", "18000", "--grpc-port", "18001", "--model-repository", str(tmp_path)]) == 0
    (options,) = seen
    assert (options.http_port, options.grpc_port) == (18000, 18001)
    assert options.metrics_port not in (0, 18000, 18001)


def test_demo_refuses_a_missing_photo_before_preparing_or_starting_anything(tmp_path, capsys):
    repository = ensemble_repository(tmp_path / "repo", t.CLASSIFICATION)
    missing = tmp_path / "nosuch.jpg"
    for argv in ([str(missing)], ["--people", str(missing)]):
        assert main(["demo", *argv, "--model-repository", str(repository)]) == 2
        assert capsys.readouterr().err.strip() == f"error: no such file or directory: {missing}"
    assert not (repository / t.CLASSIFIER / "1" / "model.onnx").exists()


def test_the_demos_stand_in_classifier_points_at_the_one_line_import_of_the_real_one(tmp_path, capsys):
    """With the data folder's MobileNetV2 at hand, the demo names it in the command that imports it
    (and does not import it itself); the command it prints works as printed."""
    import shlex

    from tests.conftest import SHARED
    from triton_vision_serving.demo import REAL_CLASSIFIER, stand_in_advice

    repository = ensemble_repository(tmp_path / "model_repository", t.CLASSIFICATION)
    data = tmp_path / "data"
    advice = stand_in_advice(repository, data)
    assert advice == (
        f"  `triton-vision models prepare --model {t.CLASSIFIER} --from FILE.onnx --model-repository {repository}` "
        "serves a classifier of your own in its place (1000 ImageNet classes, 3x224x224 input)"
    )
    (data / "models").mkdir(parents=True)
    (data / REAL_CLASSIFIER).write_bytes(b"not read")
    real = data / REAL_CLASSIFIER
    command = f"triton-vision models prepare --model {t.CLASSIFIER} --from {real} --model-repository {repository}"
    assert stand_in_advice(repository, data) == (
        f"  the data folder has the real MobileNetV2: `{command}` serves it in {t.CLASSIFIER}'s place "
        "(then run the demo again)"
    )
    assert not (repository / t.CLASSIFIER / "1" / "model.onnx").exists()  # said, not done
    shared = SHARED / REAL_CLASSIFIER
    if shared.is_file():
        printed = stand_in_advice(repository, SHARED).split("`")[1]
        assert main(shlex.split(printed)[1:]) == 0
        assert f"{t.CLASSIFIER}: local from {shared}" in capsys.readouterr().out


def test_model_analyzer_is_a_subcommand_that_writes_its_config(tmp_path, chelsea_rgb, capsys):
    import json

    import cv2

    repository = ensemble_repository(tmp_path / "repo", t.CLASSIFICATION)
    image = tmp_path / "cat.png"
    cv2.imwrite(str(image), chelsea_rgb)
    workdir = tmp_path / "ma"
    code = main(
        ["model-analyzer", t.CLASSIFICATION, str(image), "--model-repository", str(repository)]
        + ["--workdir", str(workdir), "--grpc-port", "18001", "--config-only"]
    )
    assert code == 0, capsys.readouterr().err
    config = json.loads((workdir / "model_analyzer.yaml").read_text())
    assert config["triton_grpc_endpoint"] == "127.0.0.1:18001"
    assert config["triton_http_endpoint"] == "127.0.0.1:8000"


def test_model_analyzer_on_an_unknown_ensemble_is_a_usage_error(tmp_path, chelsea_rgb, capsys):
    import cv2

    repository = ensemble_repository(tmp_path / "repo", t.CLASSIFICATION)
    image = tmp_path / "cat.png"
    cv2.imwrite(str(image), chelsea_rgb)
    code = main(
        ["model-analyzer", "classifcation", str(image), "--model-repository", str(repository), "--config-only"]
        + ["--workdir", str(tmp_path / "ma")]
    )
    assert code == 2
    assert capsys.readouterr().err.startswith(f"error: 'classifcation' is not an ensemble of {repository}")


def test_models_commands_outside_the_project_root_say_so_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for action in ("status", "prepare"):
        assert main(["models", action]) == 2
        assert capsys.readouterr().err.strip() == (
            "error: model repository model_repository does not exist: `triton-vision init model_repository` "
            "writes the built-in one (or pass --model-repository DIR)"
        )


def test_a_mistyped_repository_with_model_is_refused_and_nothing_is_created(tmp_path, capsys):
    typo = tmp_path / "model_repositroy"
    assert main(["models", "prepare", "--model", t.CLASSIFIER, "--model-repository", str(typo)]) == 2
    assert not typo.exists()
    wrong = ensemble_repository(tmp_path / "seg", t.SEGMENTATION)
    assert main(["models", "prepare", "--model", t.CLASSIFIER, "--model-repository", str(wrong)]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            f"error: model repository {wrong} has no model '{t.CLASSIFIER}' "
            f"(looked for {wrong / t.CLASSIFIER / 'config.pbtxt'}); is --model-repository right?"
        )
    )
    assert not (wrong / t.CLASSIFIER).exists()


def test_prepare_serve_and_models_status_name_the_imported_files_own_sha256(tmp_path, capsys):
    import hashlib

    import onnx

    from tests.unit.authoring.test_models import classifier

    repository = ensemble_repository(tmp_path / "repo", t.CLASSIFICATION)
    imported = tmp_path / "mine.onnx"
    onnx.save(classifier("input", "output"), str(imported))  # renamed to the tensor signature: rewritten
    prepare = ["models", "prepare", "--model", t.CLASSIFIER, "--from", str(imported)]
    assert main([*prepare, "--model-repository", str(repository)]) == 0
    served = repository / t.CLASSIFIER / "1" / "model.onnx"
    served_sha = hashlib.sha256(served.read_bytes()).hexdigest()
    arrived_sha = hashlib.sha256(imported.read_bytes()).hexdigest()
    described = (
        f"{t.CLASSIFIER}: local from {imported.resolve()} (sha256 {arrived_sha[:12]}...; served as a rewritten "
        f"copy, sha256 {served_sha[:12]}...)"
    )
    assert capsys.readouterr().out.splitlines()[0] == described  # models prepare
    report_model_files(servable_repository(ServerOptions(repository)))
    assert capsys.readouterr().out.splitlines() == [f"  {described}"]  # serve
    assert main(["models", "status", "--model-repository", str(repository)]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["model", "kind", "sha256", "size", "origin"]
    assert row.split()[:3] == [t.CLASSIFIER, "local", served_sha[:12]]
    assert f"{imported.resolve()} (that file's sha256 {arrived_sha[:12]}: rewritten to serve it)" in row
    assert served_sha != arrived_sha


def test_models_status_says_what_is_not_prepared_in_a_table_and_as_json(tmp_path, capsys):
    repository = ensemble_repository(tmp_path / "repo", t.SEGMENTATION)
    assert main(["models", "status", "--model-repository", str(repository)]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert row.split()[:3] == [t.SEGMENTER, "NOT", "PREPARED"]
    assert main(["models", "status", "--json", "--model-repository", str(repository)]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry == {"model": t.SEGMENTER, "kind": "NOT PREPARED", "size": 0, "path": str(Path(entry["path"]))}


@pytest.mark.parametrize("option", [["--from", "x.onnx"], ["--force"], ["--stand-in"]])
def test_models_status_refuses_the_options_only_prepare_uses(tmp_path, capsys, option):
    repository = ensemble_repository(tmp_path / "repo", t.SEGMENTATION)
    with pytest.raises(SystemExit) as info:
        main(["models", "status", *option, "--model-repository", str(repository)])
    assert info.value.code == 2
    assert f"unrecognized arguments: {' '.join(option)}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["models", "prepare", "--json", "--model-repository", str(repository)])
    assert info.value.code == 2


def test_models_status_model_shows_that_models_row_and_refuses_an_unknown_one(tmp_path, capsys):
    repository = ensemble_repository(tmp_path / "repo", t.CLASSIFICATION)
    shutil.copytree(repository / t.CLASSIFIER, repository / "other")
    config = repository / "other" / "config.pbtxt"
    config.write_text(config.read_text().replace(f'name: "{t.CLASSIFIER}"', 'name: "other"'))
    assert main(["models", "status", "--model-repository", str(repository)]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["other", t.CLASSIFIER]
    assert main(["models", "status", "--model", t.CLASSIFIER, "--model-repository", str(repository)]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == [t.CLASSIFIER]
    assert main(["models", "status", "--model", "resnet81", "--model-repository", str(repository)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: model repository {repository} has no ONNX model 'resnet81' (its ONNX models: other, {t.CLASSIFIER})"
    )


def test_preparing_the_detector_says_which_one_to_pick_on_a_cpu_and_on_a_gpu(tmp_path, capsys):
    import onnx

    from triton_vision_authoring import models as model_files

    repository = torchvision_detection_repository(tmp_path / "repo")
    detector = tmp_path / "detector.onnx"
    onnx.save(model_files.CATALOGUE[t.TORCHVISION_DETECTOR].small_stand_in(), str(detector))
    prepare = ["models", "prepare", "--model-repository", str(repository), "--model", t.TORCHVISION_DETECTOR]
    assert main([*prepare, "--from", str(detector)]) == 0
    note = capsys.readouterr().out.splitlines()[-1]
    assert note.startswith("note: on a CPU this detector takes about 3 s per photo")
    assert f"models prepare --model {t.TORCHVISION_DETECTOR_MOBILENET} --force" in note
    assert "On a GPU keep this one." in note
    assert main(prepare) == 0  # already in place: nothing was chosen, nothing to say
    assert "note:" not in capsys.readouterr().out


def test_serve_with_a_port_in_use_exits_2_naming_it_before_starting_tritonserver(tmp_path, capsys):
    repository = ensemble_repository(tmp_path / "repo", t.CLASSIFICATION)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        code = main(
            ["serve", "--model-repository", str(repository), "--http-port", str(free_port())]
            + ["--grpc-port", str(taken), "--metrics-port", str(free_port()), "--log-dir", str(tmp_path / "logs")]
        )
    assert code == 2
    assert f"error: port {taken} on 127.0.0.1 (--grpc-port) is already in use" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()  # tritonserver never started


def test_a_model_file_that_is_not_onnx_is_reported_not_a_traceback(tmp_path, capsys):
    repository = ensemble_repository(tmp_path / "repo", t.CLASSIFICATION)
    (repository / t.CLASSIFIER / "1" / "model.onnx").write_bytes(b"this is not an ONNX file" * 100)
    report_model_files(servable_repository(ServerOptions(repository)))
    assert f"  {t.CLASSIFIER}: not ONNX: {repository / t.CLASSIFIER / '1' / 'model.onnx'}" in capsys.readouterr().out


def test_cache_size_is_read_with_units_and_reaches_tritonserver_only_when_set(tmp_path, capsys):
    from triton_vision_serving.server_config import ServerOptions, parse_size

    assert [parse_size(text) for text in ("0", "4096", "256M", "256MiB", "1g", "2K")] == [
        0,
        4096,
        256 * 2**20,
        256 * 2**20,
        2**30,
        2048,
    ]
    for bad in ("", "-1", "12X", "1.5G", "M"):
        with pytest.raises(ValueError, match="is not a size"):
            parse_size(bad)
    caches = tmp_path / "caches"
    with_cache = ServerOptions(tmp_path, cache_size=parse_size("64M"))
    arguments = with_cache.arguments(backend_dir=tmp_path, shm_prefix="tv1_", cache_dir=caches)
    assert [a for a in arguments if a.startswith("--cache")] == [
        f"--cache-directory={caches}",
        "--cache-config=local,size=67108864",
    ]
    plain = ServerOptions(tmp_path).arguments(backend_dir=tmp_path, shm_prefix="tv1_", cache_dir=caches)
    assert not [a for a in plain if a.startswith("--cache")]
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--cache-size", "lots"])
    assert exited.value.code == 2
    assert "argument --cache-size: 'lots' is not a size" in capsys.readouterr().err
