"""Where one request's time went, step by step, from Triton's statistics read before and after it.

Triton's counters are cumulative per model and shared by every client, so the numbers are deltas
and are labelled approximate whenever a model counted more requests than this one made (other
traffic ran in between). Pure functions over ``model_stats`` JSON (either protocol's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NS_PER_MS = 1e6


@dataclass(frozen=True)
class Counters:
    """One model's cumulative counters (all versions summed)."""

    requests: int = 0  # successful requests
    request_ns: int = 0  # their total time in Triton
    queue_ns: int = 0
    compute_ns: int = 0  # input + infer + output

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            self.requests + other.requests,
            self.request_ns + other.request_ns,
            self.queue_ns + other.queue_ns,
            self.compute_ns + other.compute_ns,
        )

    def __sub__(self, other: Counters) -> Counters:
        return self + Counters(-other.requests, -other.request_ns, -other.queue_ns, -other.compute_ns)


def _number(stats: Mapping[str, Any], key: str, field: str) -> int:
    return int(stats.get(key, {}).get(field, 0) or 0)  # gRPC's JSON omits zeros and quotes int64


def counters(model_stats: Iterable[Mapping[str, Any]]) -> dict[str, Counters]:
    """``model_stats`` entries (Triton's statistics answer) as counters per model name."""
    found: dict[str, Counters] = {}
    for entry in model_stats:
        stats = entry.get("inference_stats", {})
        compute = sum(_number(stats, part, "ns") for part in ("compute_input", "compute_infer", "compute_output"))
        one = Counters(
            requests=_number(stats, "success", "count"),
            request_ns=_number(stats, "success", "ns"),
            queue_ns=_number(stats, "queue", "ns"),
            compute_ns=compute,
        )
        name = str(entry.get("name", ""))
        found[name] = found.get(name, Counters()) + one
    return found


@dataclass(frozen=True)
class StepTime:
    model: str
    requests: int  # requests the model counted meanwhile (1 when only this one ran)
    total_ms: float  # its requests' time in Triton, queue included
    queue_ms: float
    compute_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "requests": self.requests,
            "total_ms": round(self.total_ms, 3),
            "queue_ms": round(self.queue_ms, 3),
            "compute_ms": round(self.compute_ms, 3),
        }


@dataclass(frozen=True)
class Timing:
    steps: tuple[StepTime, ...]
    server_ms: float | None  # the ensemble's time in Triton (None: it counted no request)
    other_requests: int  # requests beyond this one that the models counted meanwhile
    missing: tuple[str, ...] = ()  # steps whose counters did not move (not yet counted)

    @property
    def approximate(self) -> bool:
        return self.other_requests > 0

    def note(self) -> str:
        if self.approximate:
            return (
                f"approximate: {self.other_requests} other request(s) ran on these models meanwhile, "
                "their time is in these numbers"
            )
        if self.missing:
            return f"not counted by the server yet: {', '.join(self.missing)}"
        return "from Triton's statistics: no other request ran meanwhile"

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": [step.as_dict() for step in self.steps],
            "server_ms": None if self.server_ms is None else round(self.server_ms, 3),
            "approximate": self.approximate,
            "note": self.note(),
        }


def unsettled(
    models: Sequence[str], before: Mapping[str, Counters], after: Mapping[str, Counters], expected: int = 1
) -> list[str]:
    """The models whose request counters have not yet grown by ``expected`` (Triton may count a
    step a moment after the answer left)."""
    return [m for m in models if (after.get(m, Counters()) - before.get(m, Counters())).requests < expected]


def step_times(
    ensemble: str,
    steps: Sequence[str],
    before: Mapping[str, Counters],
    after: Mapping[str, Counters],
    expected: int = 1,
) -> Timing:
    """The time each step (and the whole ensemble) spent on the ``expected`` requests sent between
    the ``before`` and ``after`` readings."""
    rows = []
    others = 0
    for model in dict.fromkeys([ensemble, *steps]):
        delta = after.get(model, Counters()) - before.get(model, Counters())
        others = max(others, delta.requests - expected)
    for model in steps:  # a fused ensemble is its own one step
        delta = after.get(model, Counters()) - before.get(model, Counters())
        rows.append(
            StepTime(
                model,
                delta.requests,
                delta.request_ns / NS_PER_MS,
                delta.queue_ns / NS_PER_MS,
                delta.compute_ns / NS_PER_MS,
            )
        )
    whole = after.get(ensemble, Counters()) - before.get(ensemble, Counters())
    return Timing(
        steps=tuple(rows),
        server_ms=whole.request_ns / NS_PER_MS if whole.requests > 0 else None,
        other_requests=others,
        missing=tuple(unsettled(steps, before, after, expected)),
    )
