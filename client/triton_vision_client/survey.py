"""What a server has, asked through a :class:`~.client.VisionClient`: every ensemble of its
repository, the models it names, the ensembles it has under another model prefix, and why an
ensemble a call needs is not there (what to give instead).

The client's own methods call these (:meth:`VisionClient.ensembles`, ...); they use its
package-internal calls (``_config``, ``_ready``, ``_has_model``, ``_ask``, ``_client``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import triton_vision_contract as contract

from .discovery import EnsembleConfig, EnsembleInfo, ensemble_info, model_prefixes, prefix_advice
from .errors import EnsembleMismatchError, ModelNotServedError

if TYPE_CHECKING:
    from .client import VisionClient


def ensembles(client: VisionClient) -> list[EnsembleInfo]:
    """Every ensemble of the server's repository with the client's model prefix, loaded or not
    (see :meth:`VisionClient.ensembles`)."""
    client.check_server()
    listed = client.repository_ensembles()
    if listed is None:
        names = [client.served_name(task) for task in contract.BUILT_IN_ENSEMBLES]
        names = [name for name in names if client._has_model(name)]
    else:
        names = [name for name in listed if name.startswith(client.model_prefix)]
    sources = client.model_sources()
    found = []
    for name in names:
        try:
            config: EnsembleConfig | None = client._config(name, fresh=True)
        except ModelNotServedError:
            config = None
        found.append(ensemble_info(name, config, client._ready(name), sources))
    return found


def _names(answer: Any, key: str) -> list[str]:
    """Model names of a repository index or statistics answer (HTTP: a list or ``{key: [...]}``;
    gRPC as JSON: ``{key: [...]}``)."""
    rows = answer.get(key, []) if isinstance(answer, dict) else answer
    return [str(row["name"]) for row in rows or [] if isinstance(row, dict) and row.get("name")]


def served_models(client: VisionClient) -> list[str]:
    """The models the server names: its repository index where that API is open to this client
    (``serve`` restricts it), and the loaded models its statistics list; [] when neither answers."""
    raw = client._client
    grpc = {"as_json": True} if client.protocol == "grpc" else {}
    asks = (
        (lambda: raw.get_model_repository_index(**grpc), "models"),
        (lambda: raw.get_inference_statistics(**grpc), "model_stats"),
    )
    names: list[str] = []
    for ask, key in asks:
        try:
            names += _names(ask(), key)
        except Exception:  # noqa: BLE001 - a restricted or missing API: the other may answer
            continue
    return list(dict.fromkeys(names))


def other_prefixes(client: VisionClient) -> dict[str, list[str]]:
    """{prefix: its ensembles} for every model prefix the server's models carry other than the
    client's (``""``: none): the ensembles its model_info lists, else its built-in ensembles."""
    names = served_models(client)
    found: dict[str, list[str]] = {}
    for prefix in model_prefixes(names):
        if prefix == client.model_prefix:
            continue
        listed = client.model_info(contract.INFO_ENSEMBLES, model=prefix + contract.MODEL_INFO)
        if isinstance(listed, list):
            ensembles_found = [str(name) for name in listed if str(name).startswith(prefix)]
        else:
            ensembles_found = [prefix + task for task in contract.BUILT_IN_ENSEMBLES if prefix + task in names]
        if ensembles_found:
            found[prefix] = ensembles_found
    return found


def prefix_hint(client: VisionClient) -> str | None:
    """What to give to see the ensembles the server has under another prefix, or None."""
    try:
        return prefix_advice(other_prefixes(client))
    except Exception:  # noqa: BLE001 - advice only: without it the plain message stands
        return None


def only_ensemble_of(client: VisionClient, task: str) -> str:
    """The ensemble a call of ``task`` goes to without --ensemble: the built-in one named after it, else the
    server's only ready ensemble of that task (several: :class:`EnsembleMismatchError` naming them)."""
    if task in contract.BUILT_IN_ENSEMBLES:
        return task
    ready = [info.name for info in ensembles(client) if info.task == task and info.ready]
    if len(ready) > 1:
        raise EnsembleMismatchError(
            f"the server has {len(ready)} {task} ensembles ({', '.join(ready)}): --ensemble NAME"
        )
    return ready[0].removeprefix(client.model_prefix) if ready else task


def not_served(client: VisionClient, model: str, task: str) -> ModelNotServedError:
    """The error for a call of ``task`` to ``model``, which the server has not loaded, saying what
    it has instead: that ensemble not ready, the ensembles of that task, or those under another
    prefix. A server that does not answer raises :class:`~.errors.ServerUnreachableError` here."""
    client.check_server()
    try:
        listed = ensembles(client)
    except ModelNotServedError:
        listed = []
    if any(info.name == model for info in listed):
        advice: str | None = "its repository has it, but it is not ready (`triton-vision ensembles` says so)"
    elif any(info.task == task for info in listed):
        names = ", ".join(info.name for info in listed if info.task == task)
        advice = f"its {task} ensembles: {names} (--ensemble NAME)"
    elif listed:
        advice = f"it has no {task} ensemble (its ensembles: {', '.join(info.name for info in listed)})"
    else:
        advice = prefix_hint(client)
    return ModelNotServedError(client.url, model, advice)
