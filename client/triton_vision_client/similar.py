"""``triton-vision similar``: the nearest neighbours of an embedding among a folder of embeddings.

The embeddings are what ``triton-vision embed`` writes: a folder of ``.npy`` files (``--out``, one
FP32 [D] vector per image) or a JSON Lines file (``--format jsonl --output``, one record per image
with its ``embedding``). The search is exact: cosine similarity of the query with every vector (one
matrix product in NumPy), the best ``k`` by a partial sort. A folder of embeddings fits in memory
(a million 512-d vectors are 2 GB) and one product over it takes well under a second, so an
approximate index (faiss, hnswlib, usearch: native wheels of their own) would add a dependency and
approximate answers without a gain at that size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UsageError

NPY_SUFFIX = ".npy"


@dataclass(frozen=True, eq=False)
class EmbeddingIndex:
    """Vectors [N, D] and what each one is (its image's path, or its .npy file within the folder)."""

    names: tuple[str, ...]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def _vector(value: np.ndarray, where: str) -> np.ndarray:
    vector = np.asarray(value, dtype=np.float64)
    if vector.ndim != 1 or vector.size == 0 or not np.isfinite(vector).all():
        raise UsageError(f"{where}: expected a finite vector [D], got shape {list(vector.shape)}")
    return vector


def _stack(names: list[str], vectors: list[np.ndarray], source: Path) -> EmbeddingIndex:
    if not vectors:
        raise UsageError(f"{source}: no embeddings (a folder of .npy files or a JSON Lines file from `embed`)")
    dims = {vector.shape[0] for vector in vectors}
    if len(dims) > 1:
        first = vectors[0].shape[0]
        odd = next(i for i, vector in enumerate(vectors) if vector.shape[0] != first)
        raise UsageError(
            f"{source}: embeddings of different sizes: {names[0]} has {first} values, {names[odd]} "
            f"{vectors[odd].shape[0]} (one ensemble's embeddings per index)"
        )
    return EmbeddingIndex(tuple(names), np.stack(vectors))


def load_index(source: Path) -> EmbeddingIndex:
    """The embeddings of a folder of .npy files (recursively; named by their path within it) or of a
    JSON Lines file of ``embed`` records (named by their ``path``; failed records skipped)."""
    names: list[str] = []
    vectors: list[np.ndarray] = []
    if source.is_dir():
        for path in sorted(source.rglob(f"*{NPY_SUFFIX}")):
            names.append(path.relative_to(source).as_posix())
            vectors.append(_vector(np.load(path, allow_pickle=False), str(path)))
    elif source.is_file():
        with open(source, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    raise UsageError(f"{source}:{number} is not JSON (give `embed --format jsonl` output)") from None
                if not isinstance(record, dict) or "path" not in record:
                    raise UsageError(f"{source}:{number} is not an `embed` record (no 'path')")
                if record.get("error"):
                    continue
                if "embedding" not in record:
                    raise UsageError(f"{source}:{number} has no 'embedding' (give `embed --format jsonl` output)")
                names.append(str(record["path"]))
                vectors.append(_vector(np.asarray(record["embedding"]), f"{source}:{number}"))
    else:
        raise UsageError(f"{source}: no such folder or file")
    return _stack(names, vectors, source)


Embed = Callable[[Path], np.ndarray]  # an image file -> its embedding (through a server's ensemble)


def query_vector(
    query: str, index: EmbeddingIndex, source: Path, embed: Embed | None = None
) -> tuple[np.ndarray, str | None]:
    """The query's vector, and its name in ``index`` (left out of its answers) where it is one of them:
    a name of the index, an .npy file (one of the index's own when it lies in the index's folder), or
    with ``embed`` an image file, embedded."""
    if query in index.names:
        return index.vectors[index.names.index(query)], query
    path = Path(query)
    if path.suffix == NPY_SUFFIX and path.is_file():
        vector = _vector(np.load(path, allow_pickle=False), query)
        own = None
        if source.is_dir() and path.resolve().is_relative_to(source.resolve()):
            own = path.resolve().relative_to(source.resolve()).as_posix()
        return vector, own if own in index.names else None
    if embed is not None and path.is_file():
        return _vector(embed(path), query), None
    shown = ", ".join(index.names[:3]) + (", ..." if len(index) > 3 else "")
    also = ", nor an image file" if embed is not None else " (an image needs --ensemble: it is embedded first)"
    raise UsageError(f"{query}: neither an .npy file nor a name in the index{also} (its names: {shown})")


def nearest(index: EmbeddingIndex, query: np.ndarray, k: int, *, exclude: str | None = None) -> list[tuple[str, float]]:
    """The ``k`` names of ``index`` most similar to ``query`` by cosine similarity, best first
    (ties: index order), with their similarity; ``exclude`` left out."""
    if query.shape != index.vectors.shape[1:]:
        raise UsageError(f"the query has {query.shape[0]} values, the index's embeddings {index.vectors.shape[1]}")
    norms = np.linalg.norm(index.vectors, axis=1) * np.linalg.norm(query)
    similarity = (index.vectors @ query) / np.maximum(norms, 1e-12)
    if exclude is not None:
        similarity[index.names.index(exclude)] = -np.inf
    available = len(index) - (exclude is not None)
    k = min(k, available)
    if k <= 0:
        return []
    candidates = np.argpartition(-similarity, k - 1)[:k] if k < len(index) else np.arange(len(index))
    order = candidates[np.lexsort((candidates, -similarity[candidates]))]
    return [(index.names[i], float(similarity[i])) for i in order[:k]]


def search(queries: Sequence[str], source: Path, k: int, embed: Embed | None = None) -> list[dict]:
    """For each query, {"query", "neighbours": [{"name", "cosine"}]} over the index at ``source``."""
    index = load_index(source)
    answers = []
    for query in queries:
        vector, own = query_vector(query, index, source, embed)
        found = nearest(index, vector, k, exclude=own)
        answers.append(
            {"query": query, "neighbours": [{"name": name, "cosine": round(value, 6)} for name, value in found]}
        )
    return answers
