"""CpuPressure reads Linux's CPU pressure totals and calls a window calm below its threshold."""

from __future__ import annotations

from pathlib import Path

from triton_vision_models.cpu_pressure import CpuPressure, stalled_us


def pressure_file(path: Path, some_total_us: int) -> None:
    some = f"some avg10=1.00 avg60=2.00 avg300=3.00 total={some_total_us}"
    path.write_text(f"{some}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_some_total_is_read_and_a_kernel_without_it_gives_none(tmp_path):
    path = tmp_path / "cpu"
    pressure_file(path, 3112514189)
    assert stalled_us(path) == 3112514189
    assert stalled_us(tmp_path / "absent") is None
    path.write_text("garbage\n")
    assert stalled_us(path) is None


def test_a_window_is_calm_when_threads_waited_for_less_than_the_threshold_share_of_it(tmp_path):
    path, clock = tmp_path / "cpu", Clock()
    pressure = CpuPressure(path, calm_below=0.2, clock=clock)
    pressure_file(path, 1_000_000)
    assert pressure.calm()  # nothing to compare with yet: calm
    clock.now += 0.010
    pressure_file(path, 1_000_000 + 1_000)  # 1 ms of 10 waited: 0.1
    assert pressure.calm()
    clock.now += 0.010
    pressure_file(path, 1_001_000 + 3_000)  # 3 ms of 10: 0.3
    assert not pressure.calm()
    clock.now += 0.010
    pressure_file(path, 1_004_000 + 1_900)  # 0.19: calm again, each window on its own
    assert pressure.calm()


def test_without_pressure_information_the_cpus_are_never_calm(tmp_path):
    pressure = CpuPressure(tmp_path / "absent", clock=Clock())
    assert not pressure.calm()
    assert not pressure.calm()


def test_this_machine_has_the_pressure_file_the_runner_reads():
    # Where it is missing (old kernels, some containers) the calm-CPU session is never used.
    assert stalled_us() is None or stalled_us() >= 0
