"""Embedding ensembles made by add-model, through the real tritonserver, against ONNX Runtime in-process.

Two embedders (tests/support/embedders.py): torchvision's ResNet-18 (seeded random weights) up to its
global average pool, [B, 512, 1, 1], behind torchvision's preprocessing (Resize(256), CenterCrop(224),
ImageNet mean/std; L2-normalised); and a ViT-style token model [B, 17, 48] behind a 64x64 stretch,
mean-pooled, not normalised. The reference runs the same ONNX file in-process on Pillow's preprocessing
of the spec's rule (tests/support/reference.py), pools and normalises as the spec says (written here).
Target: cosine >= 0.999 on every real photo. Measured (2 CPU cores, DALI on the CPU): see the report
lines the test prints with -s.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import SHARED
from tests.integration.conftest import running_server
from tests.support import reference
from tests.support.cli import cli
from tests.support.embedders import RESNET_SPEC, TOKEN_SIZE, TOKEN_SPEC, write_embedders
from tests.support.images import encode
from triton_vision_client.client import VisionClient

pytestmark = pytest.mark.integration

COSINE = 0.999


@pytest.fixture(scope="module")
def embedders(tmp_path_factory) -> Path:
    pytest.importorskip("torchvision")
    folder = tmp_path_factory.mktemp("embedders")
    write_embedders(folder)
    return folder


@pytest.fixture(scope="module")
def server(embedders: Path, tmp_path_factory):
    from triton_vision_authoring.add_model.add_model import add_model

    repository = tmp_path_factory.mktemp("embedding_repo")
    for spec in ("resnet_embed.toml", "token_embed.toml"):
        add_model(embedders / spec, repository)
    with running_server(repository) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with VisionClient(server.options.grpc_url, "grpc") as connected:
        yield connected


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    """Real photos: the data folder's and scikit-image's (JPEG and PNG)."""
    from PIL import Image
    from skimage import data

    found = {p.name: p.read_bytes() for p in sorted((SHARED / "images").glob("*.jpg"))}
    for name in ("chelsea", "astronaut", "coffee"):
        found[f"{name}.png"] = encode(Image.fromarray(getattr(data, name)()), "PNG")
    found["coffee.jpg"] = encode(Image.fromarray(data.coffee()), "JPEG", quality=90)
    return found


def in_process(model: Path, name: str, pixels: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    return session.run(None, {name: pixels[None].astype(np.float32)})[0][0]


def resnet_reference(folder: Path, data: bytes) -> np.ndarray:
    """torchvision's Resize(256) + CenterCrop(224) + ImageNet mean/std; the pool's [512, 1, 1] flattened, L2."""
    features = in_process(folder / RESNET_SPEC["model"], "images", reference.classification_input(data)).reshape(-1)
    return features / max(float(np.linalg.norm(features)), 1e-12)


def token_reference(folder: Path, data: bytes) -> np.ndarray:
    """The whole image to 64x64 (Pillow bilinear), (x/255 - 0.5) / 0.5; the mean of the 17 tokens."""
    rgb = reference.stretch_rgb(data, (TOKEN_SIZE, TOKEN_SIZE))
    pixels = reference.normalise_chw(rgb, mean=[0.5] * 3, std=[0.5] * 3)
    return in_process(folder / TOKEN_SPEC["model"], "pixel_values", pixels).mean(axis=0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("ensemble", ["resnet_embed", "token_embed"])
def test_served_embeddings_match_the_model_in_process(client, embedders, photos, ensemble):
    names = list(photos)
    served = client.embed([photos[n] for n in names], ensemble=ensemble, batch=3)
    rule = resnet_reference if ensemble == "resnet_embed" else token_reference
    cosines = {}
    for name, answer in zip(names, served, strict=True):
        want = rule(embedders, photos[name])
        assert answer.vector.shape == want.shape
        cosines[name] = cosine(answer.vector, want)
        if ensemble == "resnet_embed":
            assert answer.norm == pytest.approx(1.0, abs=1e-5)
        else:  # normalize = false: the model's own scale
            assert answer.norm == pytest.approx(float(np.linalg.norm(want)), rel=0.02)
    print(f"{ensemble}: cosine to in-process, worst {min(cosines.values()):.6f}: {cosines}")
    assert min(cosines.values()) >= COSINE, cosines
    alone = client.embed([photos[names[0]]], ensemble=ensemble)[0]
    np.testing.assert_allclose(alone.vector, served[0].vector, rtol=1e-4, atol=1e-6)


def test_embed_and_similar_from_the_command_line(server, photos, tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, data in photos.items():
        (folder / name).write_bytes(data)
    url = server.options.grpc_url
    out, records = tmp_path / "out", tmp_path / "emb.jsonl"
    done = cli(
        "embed",
        str(folder),
        "--ensemble",
        "resnet_embed",
        "--url",
        url,
        "--out",
        str(out),
        "--format",
        "jsonl",
        "--output",
        str(records),
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(lines) == len(photos) and {r["dim"] for r in lines} == {512}
    for record in lines:
        saved = np.load(record["npy"])
        np.testing.assert_allclose(saved, record["embedding"], atol=1e-7)
    text = cli("embed", str(folder / "chelsea.png"), "--ensemble", "resnet_embed", "--url", url, "--out", str(out))
    assert text.returncode == 0 and "chelsea.png: 512-d embedding, norm 1.0000  [" in text.stdout
    # The same photo as JPEG and PNG: each other's nearest neighbour (cosines from the records, written here).
    found = cli("similar", str(folder / "coffee.png"), "--in", str(records), "-k", "1", "--json")
    assert found.returncode == 0, found.stderr
    (neighbour,) = json.loads(found.stdout)["neighbours"]
    assert neighbour["name"] == str(folder / "coffee.jpg")
    vectors = {r["path"]: np.asarray(r["embedding"]) for r in lines}
    assert neighbour["cosine"] == pytest.approx(
        cosine(vectors[str(folder / "coffee.png")], vectors[str(folder / "coffee.jpg")]), abs=1e-5
    )
    # An image QUERY is embedded by the ensemble first: a copy of coffee.jpg finds it at cosine 1.
    query = tmp_path / "query.jpg"
    query.write_bytes(photos["coffee.jpg"])
    by_image = cli(
        "similar", str(query), "--in", str(records), "-k", "1", "--json", "--ensemble", "resnet_embed", "--url", url
    )
    assert by_image.returncode == 0, by_image.stderr
    (neighbour,) = json.loads(by_image.stdout)["neighbours"]
    assert neighbour["name"] == str(folder / "coffee.jpg") and neighbour["cosine"] == pytest.approx(1.0, abs=1e-5)
    probe = cli("probe", "--url", url, "--ensemble", "token_embed")
    assert probe.returncode == 0 and "48-d embedding" in probe.stdout, probe.stdout + probe.stderr
