"""Triton's HTTP API as ``serve`` uses it: health, model readiness, and the restricted
model-repository API (index, load, unload) with the admin key.

Health questions answer True/False (a server that cannot be reached is not ready); the admin
calls raise :class:`~triton_vision_serving.errors.AdminRequestError` naming the call, the HTTP
status and Triton's message. Standard-library HTTP: the supervisor's main loop and its probe
thread call it at the same time, and a call needs nothing but a URL and a header.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

import triton_vision_contract as contract
from triton_vision_serving.access import ADMIN_HEADER
from triton_vision_serving.errors import AdminRequestError

HEALTH_TIMEOUT_S = 1.0
INDEX_TIMEOUT_S = 5.0
LOAD_TIMEOUT_S = 300.0
UNLOAD_TIMEOUT_S = 60.0
UNREACHABLE = 0  # the status of a call that got no HTTP answer


@dataclass(frozen=True)
class ModelState:
    """One row of Triton's repository index."""

    name: str
    state: str  # READY, UNAVAILABLE, LOADING, UNLOADING, or "" when never loaded
    reason: str = ""

    @property
    def ready(self) -> bool:
        return self.state == "READY"


class AdminClient:
    def __init__(self, http_url: str, admin_key: str) -> None:
        self.base = f"http://{http_url}"
        self.admin_key = admin_key

    def _call(
        self, path: str, *, method: str = "GET", timeout: float, admin: bool = False, payload: dict | None = None
    ) -> tuple[int, object, str]:
        """(HTTP status or UNREACHABLE, the JSON body or None, why it could not be read)."""
        headers = {ADMIN_HEADER: self.admin_key} if admin else {}
        body = json.dumps(payload or {}).encode() if method == "POST" else None
        request = urllib.request.Request(f"{self.base}{path}", method=method, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None), ""
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, (json.loads(raw) if raw else None), ""
            except ValueError:
                return exc.code, raw.decode(errors="replace"), ""
        except (OSError, ValueError) as exc:
            return UNREACHABLE, None, str(getattr(exc, "reason", exc))

    def _admin(self, what: str, path: str, timeout: float, payload: dict | None = None) -> object:
        status, body, why = self._call(path, method="POST", timeout=timeout, admin=True, payload=payload)
        if status == 200:
            return body
        if status == UNREACHABLE:
            raise AdminRequestError(f"{what}: tritonserver at {self.base} did not answer ({why})")
        message = body.get("error", body) if isinstance(body, dict) else body
        raise AdminRequestError(f"{what} failed (HTTP {status}): {message}")

    # -- health ---------------------------------------------------------------------------------
    def _ok(self, path: str) -> bool:
        return self._call(path, timeout=HEALTH_TIMEOUT_S)[0] == 200

    def is_live(self) -> bool:
        return self._ok("/v2/health/live")

    def is_ready(self) -> bool:
        return self._ok("/v2/health/ready")

    def model_ready(self, name: str) -> bool:
        return self._ok(f"/v2/models/{name}/ready")

    # -- the restricted model-repository API ----------------------------------------------------
    def repository_index(self, timeout: float = INDEX_TIMEOUT_S) -> list[ModelState]:
        """Every model of the repository and its state."""
        body = self._admin("the repository index", "/v2/repository/index", timeout)
        if not isinstance(body, list):
            raise AdminRequestError(f"the repository index is not a list: {body}")
        return [ModelState(m.get("name", ""), m.get("state", ""), m.get("reason", "")) for m in body]

    def load_model(self, name: str, timeout: float = LOAD_TIMEOUT_S, config: str | None = None) -> None:
        """(Re)load a model: Triton builds new instances; the old ones serve until the new are ready.
        ``config``: a model config (JSON) used instead of the model's config.pbtxt."""
        payload = {"parameters": {"config": config}} if config is not None else None
        self._admin(f"loading model '{name}'", f"/v2/repository/models/{name}/load", timeout, payload)

    def unload_model(self, name: str, timeout: float = UNLOAD_TIMEOUT_S) -> None:
        """Unload a model (its ensembles become unavailable, the server stops reporting ready)."""
        self._admin(f"unloading model '{name}'", f"/v2/repository/models/{name}/unload", timeout)

    def ensemble_steps(self, ensemble: str) -> list[str]:
        """The models an ensemble's steps name, from Triton's view of its config ([] if unknown)."""
        status, body, _ = self._call(f"/v2/models/{ensemble}/config", timeout=INDEX_TIMEOUT_S)
        if status != 200 or not isinstance(body, dict):
            return []
        return contract.ensemble_steps(body)
