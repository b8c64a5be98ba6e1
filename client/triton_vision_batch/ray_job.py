"""The batch job's engine on Ray: actors that each hold one client to one server, and the driver
that hands them chunks of images and writes each chunk's records as a Parquet part.

An actor answers a chunk with the folder job's own engine (the task's ``*_many`` call: requests
in flight, batching, a failed image as a failed record, temporary refusals sent again with the
client's back-off) and returns the chunk's records. Only the driver writes, so a killed driver
leaves whole parts and nothing else.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from triton_vision_client.client import VisionClient
from triton_vision_client.errors import ClientError
from triton_vision_client.jobs import ImageResult
from triton_vision_client.records import Record
from triton_vision_client.tasks import TASKS

from .sources import Item, sources

LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024  # records only travel through it: a small store will do
CHUNKS_PER_ACTOR = 2  # in flight per actor: the next chunk is queued while one is answered


@dataclass(frozen=True)
class CallOptions:
    """How every actor calls its server: the connection, and the fields of the folder job's
    arguments that the task's ``start`` function reads (ensemble, batch, concurrency, top_k, ...)."""

    task: str
    protocol: str
    timeout_s: float
    model_prefix: str
    arguments: dict[str, Any]


@dataclass
class ChunkAnswer:
    records: list[Record] = field(default_factory=list)
    retries: list[str] = field(default_factory=list)  # the server's words for each request sent again
    error: str | None = None  # the job must stop (no server, the ensemble gone): why


class Caller:
    """A Ray actor's body: one client to one server, answering chunks of images."""

    def __init__(self, url: str, options: CallOptions) -> None:
        self.url = url
        self.client = VisionClient(
            url, options.protocol, timeout_s=options.timeout_s, model_prefix=options.model_prefix
        )
        self.task = TASKS[options.task]
        self.arguments = argparse.Namespace(**options.arguments)

    def answer(self, items: Sequence[Item]) -> ChunkAnswer:
        chunk = ChunkAnswer()
        unreadable: list[ImageResult] = []
        try:
            results = self.task.start(self.client, sources(items, unreadable), self.arguments, chunk.retries.append)
            chunk.records = [self.task.kind.record(result, None) for result in results]
        except ClientError as exc:  # raised in the actor, said by the driver (no traceback)
            return ChunkAnswer(error=f"{self.url}: {exc}")
        chunk.records += [self.task.kind.record(result, None) for result in unreadable]
        return chunk


def connect(address: str | None, local_cpus: int) -> None:
    """Join the Ray cluster at ``address`` (or ``$RAY_ADDRESS``), or start a small local one; a
    process already connected (a test, a notebook) stays on its cluster."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=local_cpus,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )


def chunked(items: Sequence[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def run_chunks(
    urls: Sequence[str],
    options: CallOptions,
    items: Sequence[Item],
    *,
    actors: int,
    chunk_size: int,
    actor_cpus: float,
    on_chunk: Callable[[ChunkAnswer], None],
) -> str | None:
    """Answer ``items`` on ``actors`` actors spread over ``urls`` (actor i calls ``urls[i % n]``),
    calling ``on_chunk`` in the driver as each chunk completes; why the job stopped, or None."""
    import ray

    remote: Any = ray.remote(Caller).options(num_cpus=actor_cpus, max_restarts=2, max_task_retries=2)
    pool: list[Any] = [remote.remote(urls[index % len(urls)], options) for index in range(actors)]
    waiting = deque(chunked(items, chunk_size))
    in_flight: dict[Any, Any] = {}

    def send(actor: Any) -> None:
        if waiting:
            in_flight[actor.answer.remote(waiting.popleft())] = actor

    try:
        for _ in range(CHUNKS_PER_ACTOR):
            for actor in pool:
                send(actor)
        while in_flight:
            (ready,), _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(ready)
            try:
                chunk = ray.get(ready)
            except ray.exceptions.RayError as exc:  # an actor lost beyond its restarts (a node gone)
                return f"an actor failed: {exc}"
            if chunk.error is not None:
                return chunk.error
            on_chunk(chunk)
            send(actor)
    finally:
        for actor in pool:
            ray.kill(actor)
    return None
