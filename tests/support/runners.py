"""Running a pure runner on one request in unit tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from triton_vision_models.model_config import RequestData

Outputs = Mapping[str, np.ndarray]


def run_request(
    runner: Callable[[Sequence[RequestData]], Sequence[Outputs | Exception]],
    inputs: dict[str, np.ndarray],
    parameters: dict | None = None,
) -> Outputs:
    """The runner's outputs for one request; a refusal it returned instead is raised."""
    (out,) = runner([RequestData(inputs=inputs, parameters=parameters or {})])
    if isinstance(out, Exception):
        raise out
    return out
