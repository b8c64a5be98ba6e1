"""/proc readers (procfs) and their users, the supervisor's model processes and the bench's CPU per
process, against real processes this test starts and what other interfaces say of them."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from triton_vision_bench import cpu
from triton_vision_serving import procfs
from triton_vision_serving.supervisor import ModelProcess, model_processes

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux's /proc")
WAIT_S = 20.0


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{what} within {WAIT_S} s")


def fake_stub(repository: Path, model: str, code: str) -> Path:
    """A Python file where a backend stub's model file would be: ``<repository>/<model>/1/model.py``."""
    path = repository / model / "1" / "model.py"
    path.parent.mkdir(parents=True)
    path.write_text(code)
    return path


SLEEPER = "import time\ntime.sleep(60)\n"


@pytest.fixture
def children(tmp_path):
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=WAIT_S)


def test_stat_line_with_spaces_and_parentheses_in_the_name_is_parsed():
    line = "4242 (triton (py) stub) S 4200 4242 4242 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 9 0 1 2000 512 7"
    stat = procfs.parse_stat(line)
    assert (stat.pid, stat.ppid, stat.state, stat.cpu_ticks, stat.rss_pages) == (4242, 4200, "S", 280, 512)
    assert not stat.zombie and procfs.parse_stat(line.replace(") S ", ") Z ")).zombie


def test_this_process_as_proc_tells_it_and_as_the_os_module_tells_it():
    sum(range(3_000_000))  # some CPU time to compare
    stat = procfs.read_stat(os.getpid())
    times = os.times()
    assert stat is not None and stat.pid == os.getpid() and stat.ppid == os.getppid() and stat.state == "R"
    assert stat.cpu_s == pytest.approx(times.user + times.system, abs=0.05)  # clock ticks are 10 ms
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    assert 0 < stat.rss_bytes <= peak_bytes
    assert stat.rss_pages == pytest.approx(resident_pages, rel=0.05)
    assert procfs.cmdline(os.getpid())[0] == sys.argv[0] or Path(procfs.cmdline(os.getpid())[0]).name.startswith("py")
    assert procfs.read_stat(2**22 + 1) is None and procfs.cmdline(2**22 + 1) == []  # above pid_max: no such process


def test_tree_has_the_root_and_its_descendants_parents_first_and_nobody_else():
    stats = {
        pid: procfs.ProcStat(pid, ppid, "S", ticks, 0)
        for pid, ppid, ticks in [(10, 1, 100), (12, 11, 25), (11, 10, 50), (13, 1, 1000), (14, 12, 5)]
    }
    assert procfs.tree(10, stats) == [10, 11, 12, 14]
    assert procfs.children(10, stats) == [11]
    assert procfs.tree_cpu_s(10, stats) == pytest.approx(180 / procfs.TICKS_PER_S)


def test_children_cmdlines_and_zombies_of_real_processes(children):
    first = children("-c", SLEEPER, "an argument")
    second = children("-c", SLEEPER)
    found = wait_for(
        lambda: set(procfs.children(os.getpid(), procfs.all_stats())) >= {first.pid, second.pid}, "children"
    )
    assert found
    assert procfs.cmdline(first.pid) == [sys.executable, "-c", SLEEPER, "an argument"]
    assert procfs.tree(os.getpid(), procfs.all_stats())[0] == os.getpid()
    second.kill()  # not waited for: a zombie until it is reaped
    assert wait_for(lambda: (s := procfs.read_stat(second.pid)) is not None and s.zombie, "a zombie")
    assert procfs.cmdline(second.pid) == []
    second.wait()
    assert procfs.read_stat(second.pid) is None


def test_stub_model_is_read_from_the_model_file_the_stub_was_given():
    repository = Path("/srv/repository")
    stub = "/opt/tritonserver/backends/python/triton_python_backend_stub"
    assert procfs.stub_model([stub, "/srv/repository/image_guard/1/model.py", "shm"], repository) == "image_guard"
    assert procfs.stub_model([stub, "/elsewhere/image_guard/1/model.py"], repository) == ""
    assert procfs.stub_model([stub, "/srv/repository/image_guard/model.py"], repository) == ""
    assert procfs.stub_model([stub], repository) == ""


def test_supervisors_model_processes_are_the_stubs_of_its_repository_and_zombies(children, tmp_path):
    repository = tmp_path / "repository"
    guard = children(str(fake_stub(repository, "image_guard", SLEEPER)))
    other = children(str(fake_stub(tmp_path / "other", "resnet18", SLEEPER)))  # not this repository's
    wait_for(lambda: guard.pid in model_processes(os.getpid(), repository), "the stub")
    found = model_processes(os.getpid(), repository)
    assert found[guard.pid] == ModelProcess(guard.pid, "image_guard", zombie=False)
    assert other.pid not in found
    guard.kill()
    dead = wait_for(
        lambda: model_processes(os.getpid(), repository).get(guard.pid, ModelProcess(0, "", False)).zombie, ""
    )
    assert dead
    assert model_processes(os.getpid(), repository)[guard.pid].model == ""  # a zombie's cmdline is gone


def test_bench_attributes_a_stubs_cpu_seconds_to_its_model(children, tmp_path):
    """The stub burns CPU and reports its own process_time: the bench's figure for it agrees."""
    repository = tmp_path / "repository"
    report = tmp_path / "used.txt"
    burner = fake_stub(
        repository,
        "classification_preprocess",
        "import pathlib, sys, time\n"
        "pathlib.Path(sys.argv[1] + '.ready').write_text('')\n"
        "while not pathlib.Path(sys.argv[1] + '.go').exists(): time.sleep(0.01)\n"
        "start = time.process_time()\n"
        "while time.process_time() - start < 0.3: pass\n"
        "pathlib.Path(sys.argv[1]).write_text(str(time.process_time() - start))\n"
        "time.sleep(60)\n",
    )
    process = children(str(burner), str(report))
    wait_for(lambda: Path(f"{report}.ready").exists(), "the burner")
    before = cpu.server_tree(os.getpid(), repository)
    Path(f"{report}.go").write_text("")
    wait_for(lambda: report.exists() and report.read_text(), "the burner's report")
    after = cpu.server_tree(os.getpid(), repository)
    assert before is not None and after is not None
    rows = {row["process"]: row for row in cpu.per_image(before, after, images=2)}
    assert rows[cpu.SERVER]["kind"] == "server"  # this test's process is the tree's root
    stub = rows["classification_preprocess"]
    assert stub["kind"] == "stub" and stub["processes"] == 1 and process.pid in {s.pid for s in after}
    used_ms = float(report.read_text()) * 1e3
    assert stub["cpu_ms_per_image"] == pytest.approx(used_ms / 2, abs=15)  # ticks of 10 ms, start-up outside
    assert cpu.server_tree(None, repository) is None


def test_cpu_per_image_counts_new_processes_from_zero_drops_ended_ones_and_keeps_step_order():
    def sample(pid, name, ticks, kind="stub"):
        return cpu.ProcessSample(pid, name, kind, ticks, 2**20)

    before = [sample(1, cpu.SERVER, 100, "server"), sample(2, "b", 10), sample(3, "a", 10), sample(9, "gone", 50)]
    after = [sample(1, cpu.SERVER, 110, "server"), sample(2, "b", 30), sample(3, "a", 20), sample(4, "a", 40)]
    rows = cpu.per_image(before, after, images=10, order=["a", "b"])
    tick_ms = 1e3 / procfs.TICKS_PER_S
    assert [(r["process"], r["processes"]) for r in rows] == [(cpu.SERVER, 1), ("a", 2), ("b", 1)]
    assert [r["cpu_ms_per_image"] for r in rows] == pytest.approx([1 * tick_ms, 5 * tick_ms, 2 * tick_ms])
    assert rows[1]["rss_mb"] == pytest.approx(2.0)
