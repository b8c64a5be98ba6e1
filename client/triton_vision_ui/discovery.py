"""The image guard's byte limit of an ensemble (which ensembles a server has, and their tasks, come
from :meth:`triton_vision_client.client.VisionClient.ensembles`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from triton_vision_client.discovery import EnsembleInfo

__all__ = ["EnsembleInfo", "guard_max_bytes"]

GUARD_MAX_BYTES = "max_bytes"  # the image guard's parameter: the largest encoded image it accepts


def guard_max_bytes(step_configs: Mapping[str, Mapping[str, Any]]) -> tuple[str, int] | None:
    """The step with the smallest ``max_bytes`` parameter among an ensemble's step configs, and
    that limit (None: no step declares one)."""
    limits = []
    for step, config in step_configs.items():
        value = config.get("parameters", {}).get(GUARD_MAX_BYTES, {}).get("string_value")
        try:
            limits.append((int(str(value)), step))
        except ValueError:
            continue
    if not limits:
        return None
    max_bytes, step = min(limits)
    return step, max_bytes
