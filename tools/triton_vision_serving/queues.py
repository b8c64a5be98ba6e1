"""``serve --max-queue-size N --queue-timeout-ms MS``: every composing model's queue bounds, at load.

The bounds are written in each model's config (the generator writes 32 requests and 2 s,
docs/reliability.md#bounded-queues-and-overload); these options override them for one ``serve`` without touching the
files: after start-up every model with a dynamic batcher is loaded again with its own config
(read from its config.pbtxt) in which the default priority's queue policy carries the new bounds,
and every later load by the supervisor (a healed or changed model) does the same. Triton builds
the reloaded instances beside the old ones, so nothing stops answering meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format

from triton_vision_models.errors import ConfigError
from triton_vision_models.repository import load_config

# A config parameter no model reads; a load that changes it gets fresh instances (config_json).
RELOAD_PARAMETER = "triton_vision_reload"


@dataclass(frozen=True)
class QueueBounds:
    """Bounds that replace the configs' (None: keep what the config says)."""

    max_size: int | None = None  # requests; 0: unbounded
    timeout_ms: int | None = None  # 0: no limit

    @property
    def overrides(self) -> bool:
        return self.max_size is not None or self.timeout_ms is not None

    def describe(self) -> str:
        parts = []
        if self.max_size is not None:
            parts.append(
                f"at most {self.max_size} waiting requests" if self.max_size else "no bound on waiting requests"
            )
        if self.timeout_ms is not None:
            parts.append(f"a wait limit of {self.timeout_ms / 1000:g} s" if self.timeout_ms else "no wait limit")
        return ", ".join(parts)

    def config_json(self, model_dir: Path, *, generation: int | None = None) -> str | None:
        """The model's config with these bounds, as JSON for Triton's load API; None when nothing
        changes (no override, no dynamic batcher, or a config that does not parse: Triton then
        loads the file itself and says what is wrong with it).

        ``generation``: written as the config parameter :data:`RELOAD_PARAMETER`, which no model
        reads. Triton ignores a load whose config and files are unchanged (the old instances serve
        on); a new value makes it build fresh instances, and processes, beside the old ones."""
        if not self.overrides and generation is None:
            return None
        try:
            config = load_config(model_dir)
        except ConfigError:
            return None
        changed = False
        if self.overrides and config.HasField("dynamic_batching"):
            policy = config.dynamic_batching.default_queue_policy
            if self.max_size is not None:
                policy.max_queue_size = self.max_size
            if self.timeout_ms is not None:
                policy.default_timeout_microseconds = self.timeout_ms * 1000
                if self.timeout_ms:
                    policy.timeout_action = policy.REJECT
                    policy.allow_timeout_override = True
            changed = True
        if generation is not None:
            config.parameters[RELOAD_PARAMETER].string_value = str(generation)
            changed = True
        return json_format.MessageToJson(config, preserving_proto_field_name=True) if changed else None
