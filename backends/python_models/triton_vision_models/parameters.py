"""Request parameters, checked: each error names the parameter, what it must be, and what came.

Triton hands a Python model its request parameters as JSON values (bool, int, str); clients
that can only send strings (e.g. perf_analyzer, curl) send "5" or "true", which are accepted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidParameterError


def _range_text(kind: str, minimum: float, maximum: float | None) -> str:
    if maximum is None:
        return f"{kind} >= {minimum}"
    return f"{kind} in {minimum}..{maximum}" if kind == "an integer" else f"{kind} in [{minimum:g}, {maximum:g}]"


def _number_parameter(
    parameters: Mapping[str, Any], name: str, default: Any, *, integer: bool, minimum: Any, maximum: Any
) -> Any:
    wanted = _range_text("an integer" if integer else "a number", minimum, maximum)
    raw = parameters.get(name, default)
    if isinstance(raw, bool):
        raise InvalidParameterError(f"parameter '{name}' must be {wanted}, got a boolean")
    if isinstance(raw, str):
        try:
            raw = int(raw.strip()) if integer else float(raw.strip())
        except ValueError:
            raise InvalidParameterError(f"parameter '{name}' must be {wanted}, got '{raw}'") from None
    if not isinstance(raw, int if integer else (int, float)):
        raise InvalidParameterError(f"parameter '{name}' must be {wanted}, got {type(raw).__name__}")
    value = raw if integer else float(raw)
    if math.isnan(value) or value < minimum or (maximum is not None and value > maximum):
        raise InvalidParameterError(f"parameter '{name}' must be {wanted}, got {raw}")
    return value


def int_parameter(
    parameters: Mapping[str, Any], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    return _number_parameter(parameters, name, default, integer=True, minimum=minimum, maximum=maximum)


def float_parameter(
    parameters: Mapping[str, Any], name: str, default: float, *, minimum: float, maximum: float
) -> float:
    return _number_parameter(parameters, name, default, integer=False, minimum=minimum, maximum=maximum)


def bool_parameter(parameters: Mapping[str, Any], name: str, default: bool) -> bool:
    raw = parameters.get(name, default)
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise InvalidParameterError(f"parameter '{name}' must be a boolean or 'true'/'false', got {raw!r}")


# Parameters Triton itself, or its clients, put on a request: never the ensemble's business.
FOREIGN_PARAMETERS = frozenset({"sequence_id", "sequence_start", "sequence_end", "priority", "timeout", "headers"})


def refuse_unknown(parameters: Mapping[str, Any], known: Sequence[str]) -> None:
    """:class:`InvalidParameterError` for a request parameter the ensemble does not take (a typo such as
    ``score_thresh`` would otherwise be ignored silently), naming the known ones."""
    unknown = sorted(
        name
        for name in parameters
        if name not in known and name not in FOREIGN_PARAMETERS and not name.startswith("triton_")
    )
    if unknown:
        listed = ", ".join(known) if known else "none"
        raise InvalidParameterError(f"unknown request parameter '{unknown[0]}' (this ensemble takes: {listed})")
