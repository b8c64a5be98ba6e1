"""``serve``'s supervisor: keeps every model of a running tritonserver able to answer.

Triton's Python backend does not restart a model process (stub) that dies (the OOM killer, a
crash in a native library): every later request to that model fails with "Stub process ... is
not healthy" while ``/v2/health/ready`` keeps answering 200 (triton-inference-server/server
issues 7230 and 8604). The supervisor, ticking every :data:`TICK_S` in ``serve``'s main loop:

- **dead model process**: finds tritonserver's model processes in ``/proc`` (their command line
  names the model's file in the repository); when one turns zombie (died unexpectedly) it unloads the
  model (its ensembles become unavailable, so ``/v2/health/ready`` stops answering 200 and probes
  take the replica out of rotation) and loads it again: fresh processes, service back within
  seconds. Processes of the old instances still alive afterwards are killed (and not healed again).
- **a model whose process died while it loaded** (killed while tritonserver started, or while a
  heal or new files loaded it; Triton's reason: "Stub process ... is not healthy") stays down until it is loaded
  again: the supervisor loads it again after :data:`LOAD_RETRY_DELAYS_S` (then the ensembles that
  wait for it), and gives up, logging why, once those are spent. Other load failures (a corrupt
  file) wait for the files to change.
- **model files changed** (``models prepare --force``, a copied ``model.onnx``): after the files
  have been still for one scan, the model is loaded again. Triton builds the new instances beside
  the old ones, which keep answering until the new ones are ready: no request fails. A file that
  does not load leaves the old model serving; the failure is logged with Triton's reason.
- **a model that can no longer answer** although its processes live (optional, every
  ``probe_interval_s``): one tiny image through each ensemble; two failures in a row reload the
  ensemble's models (the one a "Stub process" error names, else all of its steps). A probe the
  server refuses for load (a full queue) is an answer, not a failure: a busy model is not reloaded.
- **a model process whose shared-memory pool grew** above ``trim_above_bytes`` (a flood of big
  requests; the Python backend never shrinks a pool) and has not changed for
  :data:`TRIM_QUIET_SCANS` scans: the model is loaded again, which builds a fresh process beside
  the old one and removes the old pool with it (:mod:`.memory`). At most once per model every
  :data:`TRIM_COOLDOWN_S`.

Poll mode would reload changed files by itself, but it forbids the load/unload API the healing
needs; explicit mode with the supervisor polling the files does both.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from triton_vision_client.errors import EnsembleMismatchError
from triton_vision_models.repository import ENSEMBLE, ModelRepository
from triton_vision_serving.admin import ModelState
from triton_vision_serving.errors import AdminRequestError
from triton_vision_serving.memory import DEFAULT_TRIM_ABOVE_BYTES
from triton_vision_serving.queues import QueueBounds
from triton_vision_serving.readiness import explain
from triton_vision_serving.runtime import LocalTritonServer

LOG = logging.getLogger("triton_vision_serving.supervisor")
TICK_S = 0.25
FILE_SCAN_S = 2.0
STALE_PROCESS_GRACE_S = 5.0
TRIM_QUIET_SCANS = 2  # the pool has not changed over this many file scans (>= 4 s): the flood is over
TRIM_COOLDOWN_S = 10.0
IGNORED_SUFFIXES = (".partial", ".tmp", ".pyc")
LOAD_RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)  # a model whose process died while it loaded: at most 5 more loads


def process_died_while_loading(reason: str) -> bool:
    """Triton's reason for a failed load says the model's process died meanwhile (a transient cause:
    loading it again gives it a fresh process), not that its files or code are wrong."""
    return "Stub process" in reason and "not healthy" in reason


@dataclass(frozen=True)
class ModelProcess:
    pid: int
    model: str
    zombie: bool


def model_processes(server_pid: int, repository: Path) -> dict[int, ModelProcess]:
    """tritonserver's children that run a model of ``repository`` (the stub's first argument is
    ``<repository>/<model>/<version>/<file>``)."""
    from triton_vision_serving import procfs

    root = repository.resolve()
    stats = procfs.all_stats()
    found = {}
    for pid in procfs.children(server_pid, stats):
        zombie = stats[pid].zombie
        model = procfs.stub_model(procfs.cmdline(pid), root)
        if model or zombie:
            found[pid] = ModelProcess(pid, model, zombie)
    return found


def file_signature(model_dir: Path) -> tuple:
    """What changes when any file of a model changes (path, size, mtime)."""
    entries = []
    for path in sorted(model_dir.rglob("*")):
        if "__pycache__" in path.parts or path.name.startswith(".") or path.name.endswith(IGNORED_SUFFIXES):
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        if path.is_file():
            entries.append((str(path.relative_to(model_dir)), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


@dataclass
class Supervisor:
    server: LocalTritonServer
    probe: Callable[[str], object] | None = None  # raises on failure; sends one image through an ensemble
    probe_interval_s: float = 0.0  # 0: no functional probes
    probe_ensembles: list[str] = field(default_factory=list)
    trim_above_bytes: int = DEFAULT_TRIM_ABOVE_BYTES  # 0: never reload a model for its pool
    queue_bounds: QueueBounds = field(default_factory=QueueBounds)  # serve's overrides of the configs' queues
    heals: list[dict] = field(default_factory=list)  # what happened, for logs and tests
    on_heal: Callable[[str, str], None] | None = None  # (model, one of metrics.HEAL_CAUSES) at each reload
    _known: dict[int, str] = field(default_factory=dict)  # pid -> model, learnt while the process lived
    _handled: set[int] = field(default_factory=set)  # dead processes already acted on
    _seen_dead: set[int] = field(default_factory=set)  # dead processes of no known model, already looked at
    _signatures: dict[str, tuple] = field(default_factory=dict)
    _changed: dict[str, tuple] = field(default_factory=dict)
    _next_file_scan: float = 0.0
    _probe_failures: dict[str, int] = field(default_factory=dict)
    _probe_thread: threading.Thread | None = None
    _probe_results: list[tuple[str, str]] = field(default_factory=list)
    _next_probe: float = 0.0
    _pool_bytes: dict[int, tuple[int, int]] = field(default_factory=dict)  # pid -> (its pool, scans unchanged)
    _trimmed: dict[str, float] = field(default_factory=dict)  # model -> when it was last reloaded for its pool
    _generations: Iterator[int] = field(default_factory=lambda: itertools.count(1))  # of fresh loads
    _retries: dict[str, tuple[int, float]] = field(default_factory=dict)  # model -> (loads tried again, next at)

    @property
    def repository(self) -> Path:
        """The repository tritonserver serves (its model processes run from there): the fused one."""
        return self.server.served_repository

    def start(self) -> list[ModelState]:
        """Take stock after start-up: model processes, file signatures; report models that are down."""
        index = explain(self.server.admin.repository_index(), self.repository)
        for state in index:
            if not state.ready:
                LOG.error("model '%s' is DOWN (%s): %s", state.name, state.state or "not loaded", state.reason)
                self._retry_if_transient(state.name, state.reason)
        self.apply_queue_bounds(index)
        self.check_processes()
        self._signatures = {d.name: file_signature(d) for d in self._model_dirs()}
        self._next_file_scan = time.monotonic() + FILE_SCAN_S
        self._next_probe = time.monotonic() + self.probe_interval_s
        return index

    def _model_dirs(self) -> list[Path]:
        """The model folders of the model repository (the user's files, not the fused links)."""
        return [model.directory for model in ModelRepository.load(self.server.options.model_repository)]

    def _scan_processes(self) -> dict[int, ModelProcess]:
        if self.server.process is None:
            return {}
        return {
            pid: proc
            for pid, proc in model_processes(self.server.process.pid, self.repository).items()
            if not proc.zombie
        }

    # -- one step of serve's loop ---------------------------------------------------------------
    def tick(self) -> None:
        self.check_processes()
        self.check_retries()
        now = time.monotonic()
        if now >= self._next_file_scan:
            self.check_files()
            self.check_pools()
            self._next_file_scan = time.monotonic() + FILE_SCAN_S
        if self.probe is not None and self.probe_interval_s > 0:
            self.check_probes()

    def check_processes(self) -> None:
        """A model process that died unexpectedly stays a zombie: tritonserver reaps the processes it
        ends itself (unload, reload) but never waits for one it did not expect to die."""
        if self.server.process is None:
            return
        processes = model_processes(self.server.process.pid, self.repository)
        self._known = {pid: self._known.get(pid, p.model) or p.model for pid, p in processes.items()}
        dead: dict[str, list[int]] = {}
        for pid, proc in processes.items():
            if proc.zombie and pid not in self._handled:
                self._handled.add(pid)
                if self._known.get(pid):
                    dead.setdefault(self._known[pid], []).append(pid)
        unknown = [pid for pid in self._handled - set(self._seen_dead) if not self._known.get(pid)]
        self._seen_dead.update(unknown)
        self._handled &= set(processes)
        for model, pids in sorted(dead.items()):
            LOG.error("model '%s': process %s died; reloading it", model, ", ".join(map(str, pids)))
            self.heal(model, cause=f"process {pids} died", kind="process_died")
        if unknown:
            self.heal_processless(unknown)

    def heal_processless(self, dead: list[int]) -> None:
        """Processes died before the supervisor saw them alive (while tritonserver started): which
        model they ran is unknown, so every ready model without a live process is reloaded (the chaos
        test found a detector killed during a restart never healed)."""
        live = {proc.model for proc in self._scan_processes().values()}
        try:
            index = self.server.admin.repository_index()
        except AdminRequestError as exc:
            LOG.warning("processes %s died; the repository index is not available (%s)", dead, exc)
            return
        ensembles = set(ModelRepository.load(self.repository).of_kind(ENSEMBLE))  # nested ones too: no process
        if self.server.overlay is not None:  # a fused ensemble is a model process of its own
            ensembles -= set(self.server.overlay.fused)
        for state in index:
            if state.ready and state.name not in ensembles and state.name not in live:
                LOG.error("model '%s': no live process (processes %s died); reloading it", state.name, dead)
                self.heal(state.name, cause=f"no live process ({dead} died)", kind="process_died")

    def _record(self, kind: str, **heal: object) -> None:
        self.heals.append(heal)
        if self.on_heal is not None:
            self.on_heal(str(heal["model"]), kind)

    def heal(self, model: str, cause: str, kind: str) -> bool:
        """Unload (not ready meanwhile) and load again; kill the old instances' leftover processes."""
        started = time.monotonic()
        old = [pid for pid, proc in self._scan_processes().items() if proc.model == model]
        try:
            self._while_alive(f"unloading model '{model}'", lambda: self.server.admin.unload_model(model))
        except AdminRequestError as exc:
            LOG.warning("model '%s': %s; loading anyway", model, exc)
        ok, error = self._load(model)
        self._kill_leftovers(model, old)
        seconds = time.monotonic() - started
        self._record(kind, model=model, cause=cause, ok=ok, seconds=round(seconds, 2), error=error)
        if ok:
            LOG.warning("model '%s': reloaded in %.1f s, serving again", model, seconds)
        else:
            LOG.error("model '%s': reload failed after %.1f s: %s", model, seconds, error)
            self._retry_if_transient(model, error)
        return ok

    # -- loads that failed because the model's process died meanwhile ----------------------------
    def _retry_if_transient(self, model: str, reason: str) -> None:
        if process_died_while_loading(reason) and model not in self._retries:
            delay = LOAD_RETRY_DELAYS_S[0]
            LOG.warning("model '%s': its process died while it loaded; loading it again in %.0f s", model, delay)
            self._retries[model] = (0, time.monotonic() + delay)

    def check_retries(self) -> None:
        for model, (tried, due) in sorted(self._retries.items()):
            if time.monotonic() < due:
                continue
            ok, error = self._load(model)
            tried += 1
            if ok:
                del self._retries[model]
                LOG.warning("model '%s': loaded again (try %d), serving again", model, tried)
                self.load_waiting_ensembles(model)
            elif process_died_while_loading(error) and tried < len(LOAD_RETRY_DELAYS_S):
                delay = LOAD_RETRY_DELAYS_S[tried]
                self._retries[model] = (tried, time.monotonic() + delay)
                LOG.warning("model '%s': try %d failed (%s); again in %.0f s", model, tried, error, delay)
            else:
                del self._retries[model]
                LOG.error("model '%s': stays DOWN after %d tries to load it again: %s", model, tried, error)

    def apply_queue_bounds(self, index: list[ModelState]) -> None:
        """Load every ready model with a dynamic batcher again with serve's queue bounds (if any)."""
        if not self.queue_bounds.overrides:
            return
        bounded = []
        for state in index:
            if state.ready and self.queue_bounds.config_json(self.repository / state.name) is not None:
                ok, error = self._load(state.name)
                if ok:
                    bounded.append(state.name)
                else:
                    LOG.error("model '%s': its queue bounds could not be set: %s", state.name, error)
        LOG.warning("queues of %s: %s", ", ".join(bounded) or "no model", self.queue_bounds.describe())

    def _load(self, model: str, *, fresh: bool = False) -> tuple[bool, str]:
        """Load ``model``; (True, "") or (False, Triton's reason): the supervisor logs either and goes on.
        ``fresh``: new instances even though nothing changed (Triton ignores such a load otherwise)."""
        generation = next(self._generations) if fresh else None
        config = self.queue_bounds.config_json(self.repository / model, generation=generation)
        try:
            self._while_alive(f"loading model '{model}'", lambda: self.server.admin.load_model(model, config=config))
            return True, ""
        except AdminRequestError as exc:
            return False, str(exc)

    def _while_alive(self, what: str, call: Callable[[], object]) -> None:
        """``call()`` (a model-repository request), given up when tritonserver exits meanwhile: a load
        in progress when tritonserver was killed was seen to hang for the whole load timeout (300 s),
        its connection held open by a model process being started, and serve with it (chaos test)."""
        failure: list[BaseException] = []

        def run() -> None:
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                failure.append(exc)

        worker = threading.Thread(target=run, name="admin", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(TICK_S)
            if worker.is_alive() and self.server.exited():
                raise AdminRequestError(f"{what}: tritonserver exited meanwhile")
        if failure:
            raise failure[0]

    def _kill_leftovers(self, model: str, old: list[int]) -> None:
        deadline = time.monotonic() + STALE_PROCESS_GRACE_S
        while True:
            alive = [pid for pid in old if pid in self._scan_processes()]
            if not alive:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(TICK_S)
        for pid in alive:
            LOG.warning("model '%s': killing process %d left by its old instance", model, pid)
            # this death is the supervisor's own doing: tritonserver does not always reap the process, and a
            # zombie not marked handled was "healed" again: a second outage (seen in CI, on a loaded machine)
            self._handled.add(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def check_files(self) -> None:
        for model_dir in self._model_dirs():
            name = model_dir.name
            signature = file_signature(model_dir)
            if signature == self._signatures.get(name):
                self._changed.pop(name, None)
                continue
            if self._changed.get(name) != signature:  # still being written: wait for one quiet scan
                self._changed[name] = signature
                continue
            self._changed.pop(name, None)
            self._signatures[name] = signature
            LOG.warning("model '%s': files changed; loading the new version (the old one answers meanwhile)", name)
            started = time.monotonic()
            self.server.refresh_model(name)
            ok, error = self._load(name)
            if ok:
                LOG.warning("model '%s': new files serving after %.1f s", name, time.monotonic() - started)
                self.load_waiting_ensembles(name)
                self.reload_fused_users(name)
            else:
                LOG.error("model '%s': the new files failed to load: %s", name, error)
                self._retry_if_transient(name, error)  # else the new files would wait for another change
            self._record("files_changed", model=name, cause="files changed", ok=ok, error=error)

    def check_pools(self) -> None:
        """Reload a model whose process's shared-memory pool is above the bound and no longer growing."""
        if not self.trim_above_bytes:
            return
        from triton_vision_serving import memory, procfs, shm

        processes = {pid: proc.model for pid, proc in self._scan_processes().items()}
        pools = memory.model_pools(processes, {pid: procfs.cmdline(pid) for pid in processes}, shm.SHM_DIR)
        seen = {}
        for pool in pools:
            last, unchanged = self._pool_bytes.get(pool.pid, (-1, 0))
            unchanged = unchanged + 1 if last == pool.bytes else 0
            seen[pool.pid] = (pool.bytes, unchanged)
            grown = pool.bytes > self.trim_above_bytes
            settled = unchanged >= TRIM_QUIET_SCANS
            rested = time.monotonic() - self._trimmed.get(pool.model, -TRIM_COOLDOWN_S) >= TRIM_COOLDOWN_S
            if grown and settled and rested:
                self._trimmed[pool.model] = time.monotonic()
                self.trim(pool)
        self._pool_bytes = seen

    def trim(self, pool) -> None:
        mb, limit = pool.bytes / 2**20, self.trim_above_bytes / 2**20
        LOG.warning(
            "model '%s': its process's shared-memory pool grew to %.0f MB (bound %.0f MB); loading it again to "
            "return the memory (the old instance answers meanwhile)",
            pool.model,
            mb,
            limit,
        )
        started = time.monotonic()
        ok, error = self._load(pool.model, fresh=True)
        seconds = time.monotonic() - started
        if ok:
            LOG.warning("model '%s': fresh process serving after %.1f s", pool.model, seconds)
        else:
            LOG.error(
                "model '%s': the reload failed after %.1f s (the old process serves on): %s", pool.model, seconds, error
            )
        cause = f"shared-memory pool of {mb:.0f} MB"
        self._record("shm_pool", model=pool.model, cause=cause, ok=ok, seconds=round(seconds, 2), error=error)

    def reload_fused_users(self, model: str) -> None:
        """Fused ensembles run ``model``'s files in their own process: new instances load them too."""
        if self.server.overlay is None:
            return
        for ensemble in self.server.overlay.fused_using(model):
            if ensemble != model:
                ok, error = self._load(ensemble, fresh=True)
                LOG.warning(
                    "ensemble '%s': %s", ensemble, f"runs the new '{model}'" if ok else f"reload failed: {error}"
                )

    def load_waiting_ensembles(self, model: str) -> None:
        """Ensembles that are down and need ``model`` (never loaded because it had failed): load them."""
        repository = ModelRepository.load(self.repository)
        for state in self.server.admin.repository_index():
            if not state.ready and model in repository.composing_models(state.name):
                ok, error = self._load(state.name)
                LOG.warning("ensemble '%s': %s", state.name, "loaded" if ok else f"still down: {error}")

    # -- functional probes ----------------------------------------------------------------------
    def check_probes(self) -> None:
        if self._probe_thread is not None and not self._probe_thread.is_alive():
            self._probe_thread = None
            results, self._probe_results = self._probe_results, []
            for ensemble, error in results:
                self._on_probe(ensemble, error)
        if self._probe_thread is None and time.monotonic() >= self._next_probe:
            self._next_probe = time.monotonic() + self.probe_interval_s
            self._probe_thread = threading.Thread(target=self._run_probes, name="probe", daemon=True)
            self._probe_thread.start()

    def _run_probes(self) -> None:
        for ensemble in list(self.probe_ensembles):
            if not self.server.admin.model_ready(ensemble):
                continue
            try:
                self.probe(ensemble)  # type: ignore[misc]
                self._probe_results.append((ensemble, ""))
            except EnsembleMismatchError as exc:  # answers no task's outputs: no request sent, no evidence
                LOG.warning("ensemble '%s' is not probed: %s", ensemble, exc)
                self.probe_ensembles.remove(ensemble)
            except Exception as exc:  # noqa: BLE001 - any failure is a failed probe
                self._probe_results.append((ensemble, str(exc) or type(exc).__name__))

    def _on_probe(self, ensemble: str, error: str) -> None:
        if not error:
            self._probe_failures.pop(ensemble, None)
            return
        failures = self._probe_failures.get(ensemble, 0) + 1
        self._probe_failures[ensemble] = failures
        LOG.warning("ensemble '%s' failed its probe (%d in a row): %s", ensemble, failures, error[:300])
        if failures < 2:
            return
        self._probe_failures.pop(ensemble, None)
        for model in self.suspects(ensemble, error):
            self.heal(model, cause=f"ensemble '{ensemble}' failed its probe twice: {error[:200]}", kind="probe_failed")

    def suspects(self, ensemble: str, error: str) -> list[str]:
        """The model a "Stub process '<model>_<n>...'" error names, else every step of the ensemble."""
        # a fused ensemble (no steps in Triton's view of its config) runs them all in its own process
        steps = self.server.admin.ensemble_steps(ensemble) or [ensemble]
        if "Stub process '" in error:
            instance = error.split("Stub process '", 1)[1].split("'", 1)[0]
            named = [m for m in steps if instance.startswith(m + "_")]
            if named:
                return [max(named, key=len)]
        return steps
