"""Per-step times from Triton's statistics deltas (pure code, on answers shaped like Triton's)."""

from __future__ import annotations

import pytest

from triton_vision_ui.timing import Counters, counters, step_times, unsettled

STEPS = ("image_guard", "pre", "model", "post")


def entry(name: str, requests: int, ns: int, *, grpc: bool, version: str = "1") -> dict:
    """One ``model_stats`` entry: every duration ``ns``; gRPC's JSON quotes int64 and omits zeros."""

    def duration(count: int, total: int) -> dict:
        if grpc:
            return {k: str(v) for k, v in (("count", count), ("ns", total)) if v}
        return {"count": count, "ns": total}

    stats = {
        "success": duration(requests, ns),
        "fail": duration(0, 0),
        "queue": duration(requests, ns // 10),
        "compute_input": duration(requests, ns // 10),
        "compute_infer": duration(requests, ns // 2),
        "compute_output": duration(requests, ns // 10),
    }
    return {"name": name, "version": version, "inference_stats": stats}


@pytest.mark.parametrize("grpc", [True, False], ids=["grpc", "http"])
def test_counters_read_both_protocols_answers_and_sum_versions(grpc):
    found = counters([entry("a", 2, 1000, grpc=grpc), entry("a", 3, 2000, grpc=grpc, version="2")])
    assert found["a"] == Counters(
        requests=5, request_ns=3000, queue_ns=300, compute_ns=100 + 500 + 100 + 200 + 1000 + 200
    )
    zero = counters([entry("idle", 0, 0, grpc=grpc)])["idle"]
    assert zero == Counters()


def readings(extra: dict[str, int]) -> tuple[dict, dict]:
    """Counters before and after one request of 10 ms per model; ``extra`` requests of 10 ms each
    counted by some models meanwhile."""
    before = {name: Counters(7, 70_000_000, 0, 0) for name in ("ens", *STEPS)}
    after = {
        name: Counters(
            8 + extra.get(name, 0),
            80_000_000 + 10_000_000 * extra.get(name, 0),
            1_000_000 * (1 + extra.get(name, 0)),
            9_000_000 * (1 + extra.get(name, 0)),
        )
        for name in ("ens", *STEPS)
    }
    return before, after


def test_one_request_alone_gives_each_steps_own_time_exactly():
    before, after = readings({})
    timing = step_times("ens", STEPS, before, after)
    assert [step.model for step in timing.steps] == list(STEPS)
    assert all(step.requests == 1 and step.total_ms == pytest.approx(10.0) for step in timing.steps)
    assert timing.steps[0].queue_ms == pytest.approx(1.0) and timing.steps[0].compute_ms == pytest.approx(9.0)
    assert timing.server_ms == pytest.approx(10.0)
    assert not timing.approximate and "no other request" in timing.note()


def test_other_traffic_meanwhile_makes_the_numbers_approximate_and_says_how_many():
    before, after = readings({"model": 2})
    timing = step_times("ens", STEPS, before, after)
    assert timing.approximate and timing.other_requests == 2
    assert "approximate" in timing.note() and "2 other" in timing.note()
    assert timing.as_dict()["approximate"] is True


def test_a_step_not_counted_yet_is_unsettled_and_named():
    before, after = readings({})
    after["post"] = before["post"]
    assert unsettled(["ens", *STEPS], before, after) == ["post"]
    timing = step_times("ens", STEPS, before, after)
    assert timing.missing == ("post",) and "post" in timing.note()
    assert unsettled(["ens", *STEPS], *readings({})) == []
