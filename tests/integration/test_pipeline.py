"""The pets_in_scene example, served, against an in-process reference.

The example's README commands write the data folder's real YOLOv8n (`yolo`) and the real
MobileNetV2 head (`pets`) and the pipeline over them. The reference runs the same two ONNX files
with ONNX Runtime in this process, each with its own library's preprocessing written here:
Ultralytics' LetterBox (OpenCV INTER_LINEAR, no antialiasing, centred, grey 114) with its class-wise
NMS for the detector, each crop cut by the pipeline's documented rule, and torchvision's
Resize(256) + CenterCrop(224) + Normalize on a Pillow image for the classifier.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import SHARED, shared_path
from tests.integration import test_examples
from tests.integration.conftest import running_server
from tests.integration.test_examples import readme_blocks, readme_commands, run

workdir = test_examples.workdir  # the examples' project-like folder (a fixture)

pytestmark = pytest.mark.integration

COCO_CAT, COCO_DOG = 15, 16  # Ultralytics' class ids (lines of examples/yolo/coco80.txt)
PETS = ["tabby", "tiger cat", "Egyptian cat", "golden retriever", "kuvasz"]
THRESHOLD, IOU, REFERENCE_MIN_SCORE = 0.4, 0.45, 0.5
OUTPUTS = ("BOXES", "SCORES", "CLASS_IDS", "LABELS", "COUNT", "OBJECT_CLASS_IDS", "OBJECT_SCORES", "OBJECT_LABELS")


def photos() -> dict[str, bytes]:
    """The data folder's photos, and scikit-image's cat (chelsea) and a cup of coffee (no pet)."""
    from skimage import data

    found = {name: (SHARED / "images" / name).read_bytes() for name in ("kitten.jpg", "dog.jpg", "persons.jpg")}
    for name in ("chelsea", "coffee"):
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2BGR))
        assert ok
        found[f"{name}.png"] = encoded.tobytes()
    return found


# -- the reference: Ultralytics' and torchvision's rules, written here -----------------------------------
def letterbox(rgb: np.ndarray, size: int = 320) -> tuple[np.ndarray, float, float, float]:
    """Ultralytics' LetterBox(auto=False, center=True): the input tensor, its scale and padding."""
    height, width = rgb.shape[:2]
    scale = min(size / height, size / width)
    new_w, new_h = round(width * scale), round(height * scale)
    pad_w, pad_h = (size - new_w) / 2, (size - new_h) / 2
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(pad_h - 0.1), round(pad_h + 0.1)
    left, right = round(pad_w - 0.1), round(pad_w + 0.1)
    canvas = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0, scale, left, top


def reference_detections(session, rgb: np.ndarray) -> list[tuple[np.ndarray, float, int]]:
    """(box in original pixels, score, class) of the cats and dogs, Ultralytics' NMS (per class)."""
    tensor, scale, left, top = letterbox(rgb)
    (predictions,) = session.run(None, {"images": tensor})
    rows = predictions[0].T  # [N, 84]
    found = []
    for cls in (COCO_CAT, COCO_DOG):
        scores = rows[:, 4 + cls]
        keep = np.flatnonzero(scores >= THRESHOLD)
        cx, cy, w, h = (rows[keep, i] for i in range(4))
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        chosen = cv2.dnn.NMSBoxes(
            [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in boxes],
            scores[keep].tolist(),
            THRESHOLD,
            IOU,
        )
        for index in np.array(chosen).reshape(-1):
            box = (boxes[index] - [left, top, left, top]) / scale
            box = np.clip(box, 0, [rgb.shape[1], rgb.shape[0], rgb.shape[1], rgb.shape[0]])
            found.append((box, float(scores[keep][index]), cls))
    return sorted(found, key=lambda item: -item[1])


def reference_logits(session, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The pets model's output for the crop of ``box``: torchvision's own preprocessing."""
    from PIL import Image
    from torchvision import transforms

    x1, y1, x2, y2 = box
    crop = rgb[max(0, math.floor(y1)) : math.ceil(y2), max(0, math.floor(x1)) : math.ceil(x2)]
    tensor = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )(Image.fromarray(crop))
    (logits,) = session.run(None, {"input": tensor.numpy()[None]})
    return logits[0]


def reference_pets(session, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The pets classifier's probabilities for the crop of ``box``."""
    logits = reference_logits(session, rgb, box)
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def infer(url: str, data: bytes, parameters: dict | None = None):
    import tritonclient.grpc as grpc

    client = grpc.InferenceServerClient(url)
    image = np.frombuffer(data, np.uint8)[None]
    tensor = grpc.InferInput("IMAGE", list(image.shape), "UINT8")
    tensor.set_data_from_numpy(image)
    outputs = [grpc.InferRequestedOutput(name) for name in OUTPUTS]
    result = client.infer("pets_in_scene", [tensor], outputs=outputs, parameters=parameters or {})
    return {name: result.as_numpy(name) for name in OUTPUTS}


@pytest.fixture
def served(workdir):
    shared_path("models/yolov8n_int8_320.onnx")
    shared_path("models/mobilenetv2-12-int8.onnx")
    lines = readme_commands("pets_in_scene")
    serve = next(line for line in lines if " serve" in line)
    for line in lines[: lines.index(serve)]:
        done = run(line, workdir)
        assert done.returncode == 0, (line, done.stderr)
    with running_server(workdir / "model_repository", cache_size=16 * 2**20) as server:
        yield workdir, server, lines[lines.index(serve) + 1]


def test_every_reference_object_comes_back_with_the_same_box_and_answer(served):
    import onnxruntime as ort

    folder, server, _ = served
    detector = ort.InferenceSession(
        str(SHARED / "models" / "yolov8n_int8_320.onnx"), providers=["CPUExecutionProvider"]
    )
    pets = ort.InferenceSession(str(folder / "examples" / "pets" / "pets.onnx"), providers=["CPUExecutionProvider"])
    compared = 0
    for name, data in photos().items():
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        out = infer(server.options.grpc_url, data, {"top_k": 5})
        count = int(out["COUNT"][0, 0])
        boxes = out["BOXES"][0][:count]
        assert set(out["CLASS_IDS"][0][:count].tolist()) <= {COCO_CAT, COCO_DOG}, name
        for box, score, cls in reference_detections(detector, rgb):
            if score < REFERENCE_MIN_SCORE:
                continue
            overlaps = [iou(box, served_box) for served_box in boxes]
            assert overlaps and max(overlaps) >= 0.7, (name, box, boxes)
            index = int(np.argmax(overlaps))
            assert out["CLASS_IDS"][0][index] == cls, name
            probabilities = reference_pets(pets, rgb, boxes[index])
            best, second = np.sort(probabilities)[::-1][:2]
            served_top1 = out["OBJECT_LABELS"][0][index][0].decode()
            if best - second >= 0.05:  # a tie within 0.05 may go either way
                assert served_top1 == PETS[int(np.argmax(probabilities))], (name, probabilities)
            else:
                assert probabilities[PETS.index(served_top1)] >= best - 0.05, (name, probabilities)
            compared += 1
    assert compared >= 3  # kitten, dog, chelsea


def test_requests_without_objects_with_bad_parameters_or_bad_bytes(served):
    from tritonclient.utils import InferenceServerException

    _, server, _ = served
    url = server.options.grpc_url
    kitten = (SHARED / "images" / "kitten.jpg").read_bytes()
    empty = infer(url, (SHARED / "images" / "persons.jpg").read_bytes())  # people, no pet
    assert empty["COUNT"].tolist() == [[0]] and empty["OBJECT_LABELS"].shape[:2] == (1, 0)
    assert infer(url, kitten, {"score_threshold": 0.99})["COUNT"].tolist() == [[0]]
    assert infer(url, kitten, {"top_k": 1})["OBJECT_LABELS"].shape == (1, 1, 1)
    for parameters, said in (
        ({"top_k": 6}, "parameter 'top_k' must be an integer in 1..5, got 6"),
        ({"max_objects": 0}, "parameter 'max_objects' must be an integer >= 1"),
        ({"max_detections": 3}, "unknown request parameter 'max_detections'"),
    ):
        with pytest.raises(InferenceServerException, match=re.escape(said)):
            infer(url, kitten, parameters)
    with pytest.raises(InferenceServerException, match="image 0: not a JPEG or PNG file"):
        infer(url, b"not an image at all")
    assert infer(url, kitten)["COUNT"].tolist() == [[1]]  # the server goes on


def test_a_repeated_photo_is_answered_from_the_detectors_cache(served):
    import tritonclient.grpc as grpc

    _, server, _ = served
    url = server.options.grpc_url
    kitten = (SHARED / "images" / "kitten.jpg").read_bytes()
    first, again = infer(url, kitten), infer(url, kitten, {"top_k": 2})
    np.testing.assert_array_equal(first["BOXES"], again["BOXES"])
    stats = grpc.InferenceServerClient(url).get_inference_statistics("yolo_infer", as_json=True)
    assert int(stats["model_stats"][0]["inference_stats"]["cache_hit"].get("count", 0)) >= 1


def test_the_readme_command_prints_the_readmes_answers(served):
    folder, server, command = served
    done = run(f"{command} --url {server.options.grpc_url}", folder)
    assert done.returncode == 0, done.stderr
    shown = next(text for _, text in readme_blocks("pets_in_scene") if "objects in 3 of 3" in text)
    for line in done.stdout.splitlines():
        if line.startswith(("   0.", "../shared")):
            assert line in shown.splitlines(), (line, shown)
    assert (folder / "out" / "dog.detections.jpg").is_file()
    csv_out = run(f"{command} --url {server.options.grpc_url} --format csv", folder).stdout
    # one row per object (rows come in completion order: docs/client.md)
    objects = {Path(row.split(",")[0]).name: row.split(",")[3] for row in csv_out.splitlines()[1:]}
    assert objects == {"kitten.jpg": "0", "dog.jpg": "0", "persons.jpg": ""}, csv_out
    assert io.StringIO(csv_out).readline().startswith("path,error,reason,object,label")


def test_the_playground_labels_each_box_with_its_objects_answer(served, tmp_path):
    """`triton-vision ui` on the pipeline's server, in headless Chromium: the kitten's box is listed with
    the classifier's top answer, as the gRPC client has it, and drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.support.ui import browser_missing, start_chromium, ui_command

    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    _, server, _ = served
    expected = infer(server.options.grpc_url, (SHARED / "images" / "kitten.jpg").read_bytes(), {"top_k": 5})
    top = expected["OBJECT_LABELS"][0][0][0].decode()
    browser = start_chromium(tmp_path / "chromium-profile")
    try:
        with ui_command("--url", server.options.grpc_url) as (url, _):
            browser.get(url)
            wait = WebDriverWait(browser, 180, poll_frequency=0.2)
            selector = '#ensembles li[data-ensemble="pets_in_scene"] input'
            wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, selector), "pets_in_scene is not listed")
            for box in browser.find_elements(By.CSS_SELECTOR, "#ensembles li[data-ensemble]"):
                checkbox = box.find_element(By.TAG_NAME, "input")
                if checkbox.is_selected() != (box.get_attribute("data-ensemble") == "pets_in_scene"):
                    checkbox.click()
            browser.find_element(By.ID, "files").send_keys(str(SHARED / "images" / "kitten.jpg"))
            done = '.panel[data-ensemble="pets_in_scene"][data-state="done"]'
            wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, done), "no answer shown")
            panel = browser.find_element(By.CSS_SELECTOR, done)
            assert panel.find_element(By.CSS_SELECTOR, ".summary").text.startswith("1 object")
            row = panel.find_element(By.CSS_SELECTOR, "ul.detections li")
            assert row.get_attribute("data-label") == "cat"
            assert row.find_element(By.CSS_SELECTOR, ".answer").text.startswith(f"→ {top} ")
            assert panel.find_element(By.CSS_SELECTOR, "img.drawn").get_attribute("src").startswith("data:image/jpeg")
    finally:
        browser.quit()


def test_bench_compares_the_pipeline_with_the_client_side_way(served, tmp_path):
    """`triton-vision bench --ensemble PIPELINE`: both ways on the same photos; the pipeline's tensors
    on the wire are the photo and the answers, the client-side way's also each crop (no time asserted)."""
    import json

    folder, server, _ = served
    out = tmp_path / "bench"
    photos = [str(SHARED / "images" / name) for name in ("kitten.jpg", "dog.jpg")]
    command = ["triton-vision", "bench", "--ensemble", "pets_in_scene", "--model-repository", "model_repository"]
    command += ["--url", server.options.grpc_url, "--images", *photos, "--pipeline-images", "4"]
    command += ["--pipeline-rounds", "1", "--out", str(out)]
    done = run(" ".join(command), folder)
    assert done.returncode == 0, done.stderr
    assert "| bytes on the wire per photo |" in done.stdout
    report = json.loads((out / "pets_in_scene-pipeline.json").read_text())
    pipe, peer = report["median"]["pipeline"], report["median"]["client-side"]
    assert pipe["objects"] == peer["objects"] == 4  # one pet per photo, both ways
    assert pipe["bytes_per_image"] < peer["bytes_per_image"]
    assert math.isnan(pipe["server_cpu_ms_per_image"])  # a server given with --url: its CPU is not ours to read


EMBED_SPEC = """
name = "pets_embed"
task = "embedding"
model = "../pets/pets.onnx"   # its 5 logits as a vector: an embedder's contract, [B, D]

[preprocess]
resize = "shorter-crop"
size = [224, 224]
shorter = 256
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
"""


def test_an_embedding_second_stage_answers_each_objects_vector(served):
    """A pipeline over the same detector and an embedding ensemble: each object's OBJECT_EMBEDDINGS is the
    reference's output for its crop, L2-normalised (cosine)."""
    import onnxruntime as ort
    import tritonclient.grpc as grpc

    folder, _, _ = served
    examples = folder / "examples" / "pets_in_scene"
    (examples / "pets_embed.toml").write_text(EMBED_SPEC)
    pipeline = (examples / "pets_in_scene.toml").read_text().replace('"pets_in_scene"', '"pets_vectors"')
    (examples / "pets_vectors.toml").write_text(pipeline.replace('ensemble = "pets"', 'ensemble = "pets_embed"'))
    for spec in ("pets_embed.toml", "pets_vectors.toml"):
        done = run(f"triton-vision add-model examples/pets_in_scene/{spec}", folder)
        assert done.returncode == 0, done.stderr
    pets = ort.InferenceSession(str(folder / "examples" / "pets" / "pets.onnx"), providers=["CPUExecutionProvider"])
    with running_server(folder / "model_repository") as server:
        client = grpc.InferenceServerClient(server.options.grpc_url)
        cosines = []
        for name in ("kitten.jpg", "dog.jpg"):
            data = (SHARED / "images" / name).read_bytes()
            image = np.frombuffer(data, np.uint8)[None]
            tensor = grpc.InferInput("IMAGE", list(image.shape), "UINT8")
            tensor.set_data_from_numpy(image)
            asked = [grpc.InferRequestedOutput(n) for n in ("BOXES", "COUNT", "OBJECT_EMBEDDINGS")]
            result = client.infer("pets_vectors", [tensor], outputs=asked)
            rgb = cv2.cvtColor(cv2.imdecode(image[0], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            for box, vector in zip(result.as_numpy("BOXES")[0], result.as_numpy("OBJECT_EMBEDDINGS")[0], strict=True):
                expected = reference_logits(pets, rgb, box)
                assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
                cosines.append(float(vector @ expected / np.linalg.norm(expected)))
        url = server.options.grpc_url
        done = run(f"triton-vision pipeline ../shared/images/kitten.jpg --ensemble pets_vectors --url {url}", folder)
    assert len(cosines) == 2 and min(cosines) >= 0.999, cosines
    assert done.returncode == 0 and "5-d embedding" in done.stdout, done.stderr
