"""The client's side of task "embedding": splitting answers, records and .npy files, and `similar`
against a brute-force search written here."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path, PurePath

import numpy as np
import pytest

import triton_vision_contract as contract
from triton_vision_cli.main import main
from triton_vision_client import records
from triton_vision_client.answers import Embedding, split_embeddings
from triton_vision_client.errors import UsageError
from triton_vision_client.inputs import ImageSource
from triton_vision_client.jobs import ImageResult
from triton_vision_client.similar import load_index, nearest, search
from triton_vision_client.tasks import EMBED, save_embed


def result(name: str, vector) -> ImageResult:
    source = ImageSource(Path(name), name, PurePath(name))
    return ImageResult(source, Embedding(np.asarray(vector, np.float32)))


def cosine(a, b) -> float:
    dot = sum(float(x) * float(y) for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(float(x) ** 2 for x in a)) * math.sqrt(sum(float(y) ** 2 for y in b)))


def test_a_response_splits_into_one_embedding_per_image():
    batch = np.arange(6, dtype=np.float32).reshape(2, 3)
    first, second = split_embeddings({contract.EMBEDDING_OUTPUT: batch})
    np.testing.assert_array_equal(second.vector, [3, 4, 5])
    assert first.norm == pytest.approx(math.sqrt(5))


def test_records_carry_the_vector_and_text_a_summary(tmp_path: Path):
    vector = [0.6, -0.8, 0.0, 0.0, 0.0]
    files = save_embed(result("photos/cat.jpg", vector), tmp_path)
    np.testing.assert_array_equal(np.load(files["npy"]), np.asarray(vector, np.float32))
    assert files["npy"] == str(tmp_path / "photos" / "cat.npy")
    record = EMBED.kind.record(result("photos/cat.jpg", vector), files)
    assert record["dim"] == 5 and record["norm"] == pytest.approx(1.0)
    np.testing.assert_allclose(record["embedding"], vector, atol=1e-8)
    out = io.StringIO()
    records.RecordWriter(out, "text", EMBED.kind).write(record)
    assert out.getvalue().splitlines() == [
        "photos/cat.jpg: 5-d embedding, norm 1.0000  [0.6000, -0.8000, 0.0000, 0.0000, ...]",
        f"  wrote {files['npy']}",
    ]
    out = io.StringIO()
    records.RecordWriter(out, "jsonl", EMBED.kind).write(record)
    assert json.loads(out.getvalue())["embedding"] == record["embedding"]


@pytest.fixture
def vectors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {f"img{i:02d}.jpg": rng.normal(0, 1, 8).astype(np.float32) for i in range(30)}


def brute_force(vectors: dict[str, np.ndarray], query: np.ndarray, k: int, exclude: str | None = None):
    scored = [(name, cosine(vector, query)) for name, vector in vectors.items() if name != exclude]
    return sorted(scored, key=lambda item: -item[1])[:k]


def test_nearest_agrees_with_a_brute_force_search(vectors):
    names = list(vectors)
    index = load_index_from(vectors)
    query = np.random.default_rng(4).normal(0, 1, 8)
    got = nearest(index, query, 5)
    want = brute_force(vectors, query, 5)
    assert [name for name, _ in got] == [name for name, _ in want]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-6)
    assert [n for n, _ in nearest(index, vectors[names[7]], 3, exclude=names[7])] == [
        n for n, _ in brute_force(vectors, vectors[names[7]], 3, exclude=names[7])
    ]
    assert len(nearest(index, query, 100)) == 30


def load_index_from(vectors):
    from triton_vision_client.similar import EmbeddingIndex

    return EmbeddingIndex(tuple(vectors), np.stack(list(vectors.values())).astype(np.float64))


def test_a_folder_of_npy_files_and_a_jsonl_file_are_the_same_index(vectors, tmp_path: Path):
    folder = tmp_path / "npy"
    out = io.StringIO()
    writer = records.RecordWriter(out, "jsonl", EMBED.kind)
    for name, vector in vectors.items():
        writer.write(EMBED.kind.record(result(name, vector), save_embed(result(name, vector), folder)))
    (tmp_path / "emb.jsonl").write_text(out.getvalue() + json.dumps({"path": "bad.jpg", "error": "x"}) + "\n")
    from_folder, from_jsonl = load_index(folder), load_index(tmp_path / "emb.jsonl")
    assert from_folder.names == tuple(n.replace(".jpg", ".npy") for n in vectors)
    assert from_jsonl.names == tuple(vectors)
    np.testing.assert_allclose(from_folder.vectors, from_jsonl.vectors, atol=1e-7)
    (answer,) = search(["img03.jpg"], tmp_path / "emb.jsonl", 4)
    assert [n["name"] for n in answer["neighbours"]] == [
        n for n, _ in brute_force(vectors, vectors["img03.jpg"], 4, exclude="img03.jpg")
    ]
    (by_file,) = search([str(folder / "img03.npy")], folder, 4)  # its own file is left out
    assert [n["name"] for n in by_file["neighbours"]] == [
        n["name"].replace(".jpg", ".npy") for n in answer["neighbours"]
    ]


def test_similar_refuses_what_it_cannot_search(tmp_path: Path):
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones(4, np.float32))
    np.save(folder / "b.npy", np.ones(5, np.float32))
    with pytest.raises(UsageError, match=r"embeddings of different sizes: a.npy has 4 values, b.npy 5"):
        load_index(folder)
    (folder / "b.npy").unlink()
    with pytest.raises(UsageError, match="neither an .npy file nor a name in the index"):
        search(["nothing.jpg"], folder, 3)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UsageError, match="no embeddings"):
        load_index(tmp_path / "empty.jsonl")


def test_the_similar_command_prints_the_neighbours(vectors, tmp_path: Path, capsys):
    folder = tmp_path / "npy"
    for name, vector in vectors.items():
        save_embed(result(name, vector), folder)
    assert main(["similar", "img01.npy", "--in", str(folder), "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    want = brute_force(vectors, vectors["img01.jpg"], 2, exclude="img01.jpg")
    assert lines == ["img01.npy:", *(f"  {v:7.4f}  {n.replace('.jpg', '.npy')}" for n, v in want)]
    assert main(["similar", "missing.npy", "--in", str(folder)]) == 2
