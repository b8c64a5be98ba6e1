"""The browser playground in a real headless Chromium, against the real tritonserver.

One `triton-vision serve --ui-port` (probes off, so nothing else calls its models) serves all three
ensembles: the real pretrained classifier from ../shared as resnet18, the bright-box detector and
the colour-rule segmenter, whose answers are known before anything runs. Chromium (Debian's,
driven by Selenium) opens the page, uploads photos and reads what the page shows; each check is
against the gRPC client's answer for the same bytes or against the known answer. A screenshot of
each page is saved under out/ui-screenshots/. No timing is asserted.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

import triton_vision_contract as contract
from tests.conftest import ROOT, shared_path
from tests.support.ui import (
    CAT_RECT,
    PERSON_RECT,
    SCENE_SIZE,
    SERVING_LINE,
    UI_LINE,
    WHITE_BOX,
    browser_missing,
    rect_fraction,
    running,
    scene,
    serve_args,
    start_chromium,
    three_ensemble_repository,
    ui_command,
    ui_url,
)
from triton_vision_client.client import ClientError, VisionClient
from triton_vision_serving.server_config import ServerOptions

pytestmark = pytest.mark.integration

SCREENSHOTS = ROOT / "out" / "ui-screenshots"
ANSWER_WAIT_S = 180.0  # a bound on waiting for the page, not a timing assert
GUARD = "image_guard"
GUARD_MAX_BYTES = 32 * 1024 * 1024  # model_repository/image_guard/config.pbtxt
CAT_CLASSES = range(281, 286)  # ImageNet's domestic cats
VOC_PERSON_RGB = (192, 128, 128)


# -- the server, the page, the browser ------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``serve --ui-port``, answering: the command, and the page's URL."""
    from triton_vision_serving.runtime import free_port

    options = ServerOptions.on_free_ports(three_ensemble_repository(tmp_path_factory.mktemp("ui")))
    with running(serve_args(options, free_port()), SERVING_LINE) as lines:
        url = ui_url(lines)
        assert url is not None, "".join(lines)
        yield options, url


@pytest.fixture(scope="module")
def page_url(served) -> str:
    return served[1]


@pytest.fixture(scope="module")
def client(served):
    with VisionClient(served[0].grpc_url, "grpc") as grpc:
        yield grpc


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = {"kitten.jpg": shared_path("images/kitten.jpg")}
    paths["scene.png"] = folder / "scene.png"
    cv2.imwrite(str(paths["scene.png"]), cv2.cvtColor(scene(), cv2.COLOR_RGB2BGR))
    paths["notes.txt"] = folder / "notes.txt"
    paths["notes.txt"].write_text("these are notes, not a photo\n")
    return paths


def wait(browser, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, ANSWER_WAIT_S, poll_frequency=0.2).until(condition, message)


def open_page(browser, url: str, ensembles: tuple[str, ...] | None = None) -> None:
    """Load the page; when ``ensembles`` is given, tick only those."""
    from selenium.webdriver.common.by import By

    browser.get(url)
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#ensembles li[data-ensemble]"), "no ensemble listed")
    if ensembles is not None:
        for box in browser.find_elements(By.CSS_SELECTOR, "#ensembles li[data-ensemble]"):
            checkbox = box.find_element(By.TAG_NAME, "input")
            if checkbox.is_selected() != (box.get_attribute("data-ensemble") in ensembles):
                checkbox.click()


def settled(browser) -> bool:
    from selenium.webdriver.common.by import By

    return not browser.find_elements(By.CSS_SELECTOR, '.panel[data-state="pending"]')


def upload(browser, paths: list[Path], panels_each: int) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
    wait(
        browser,
        lambda b: len(b.find_elements(By.CSS_SELECTOR, ".panel")) == len(paths) * panels_each and settled(b),
        "the page did not show every answer",
    )


def panel(browser, file: str, ensemble: str):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, f'article[data-file="{file}"] .panel[data-ensemble="{ensemble}"]')


def screenshot(browser, name: str) -> Path:
    """The whole page, beyond the window too, as out/ui-screenshots/<name>.png (DevTools protocol)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def guard_requests(served) -> int:
    """Requests the image guard counted, successful or failed (Triton's statistics)."""
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(served[0].grpc_url) as triton:
        stats = triton.get_inference_statistics(GUARD, as_json=True)["model_stats"][0]["inference_stats"]
    return sum(int(stats.get(kind, {}).get("count", 0)) for kind in ("success", "fail"))


def picture(data_url: str) -> np.ndarray:
    payload = data_url.split(",", 1)[1]
    return cv2.imdecode(np.frombuffer(base64.b64decode(payload), np.uint8), cv2.IMREAD_COLOR)


# -- the tests ----------------------------------------------------------------------------------
def test_serve_ui_port_lists_the_servers_ensembles_with_their_tasks(browser, page_url, client):
    from selenium.webdriver.common.by import By

    open_page(browser, page_url)
    listed = {
        item.get_attribute("data-ensemble"): item.find_element(By.CSS_SELECTOR, ".task").text
        for item in browser.find_elements(By.CSS_SELECTOR, "#ensembles li[data-ensemble]")
    }
    assert listed == {
        contract.CLASSIFICATION: "classification",
        contract.DETECTION: "detection",
        contract.SEGMENTATION: "segmentation",
    }
    assert sorted(client.repository_ensembles() or []) == sorted(listed)
    assert all("ready" in item.text for item in browser.find_elements(By.CSS_SELECTOR, "#ensembles li"))
    screenshot(browser, "ensembles")


def test_classification_shows_the_grpc_clients_top_label_with_bars_and_each_steps_time(
    browser, page_url, client, photos, served
):
    from selenium.webdriver.common.by import By

    kitten = photos["kitten.jpg"]
    (expected,) = client.classify([kitten.read_bytes()], top_k=contract.DEFAULT_TOP_K)
    assert expected.class_ids[0] in CAT_CLASSES, "the real classifier sees a cat (independent of the page)"
    open_page(browser, page_url, (contract.CLASSIFICATION,))
    upload(browser, [kitten], 1)
    shown = panel(browser, "kitten.jpg", contract.CLASSIFICATION)
    assert shown.get_attribute("data-state") == "done", shown.text
    rows = shown.find_elements(By.CSS_SELECTOR, ".top-k li")
    assert [row.get_attribute("data-label") for row in rows] == list(expected.labels)
    assert rows[0].find_element(By.CSS_SELECTOR, ".label").text == expected.labels[0]
    bars = [float(row.find_element(By.TAG_NAME, "meter").get_attribute("value")) for row in rows]
    np.testing.assert_allclose(bars, expected.scores, atol=1e-6)
    # Where the time went: one row per model that ran it, each counted our one request: the served
    # ensemble itself when fused (serve's way: its steps run in its process), else each step.
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(served[0].grpc_url) as triton:
        config = triton.get_model_config(contract.CLASSIFICATION, as_json=True)["config"]
    assert config["backend"] == contract.FUSED_BACKEND
    steps = [contract.CLASSIFICATION]
    table = shown.find_elements(By.CSS_SELECTOR, ".steps tbody tr")
    assert [row.get_attribute("data-model") for row in table] == steps
    assert [row.find_elements(By.TAG_NAME, "td")[1].text for row in table] == ["1"] * len(steps)
    assert "round trip" in shown.find_element(By.CSS_SELECTOR, ".latency").text
    assert "no other request" in shown.find_element(By.CSS_SELECTOR, ".note").text
    screenshot(browser, "classification")


def set_range(browser, element_id: str, key: str) -> None:
    """Move a slider to an end with the keyboard, as a person would (fires input and change)."""
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, element_id).send_keys(key)


def test_detection_draws_the_box_where_the_grpc_client_has_it_and_the_threshold_asks_again(
    browser, page_url, client, photos
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    data = photos["scene.png"].read_bytes()
    (expected,) = client.detect([data])
    np.testing.assert_allclose(expected.boxes[0], WHITE_BOX, atol=2.0)  # the known answer
    open_page(browser, page_url, (contract.DETECTION,))
    upload(browser, [photos["scene.png"]], 1)
    shown = panel(browser, "scene.png", contract.DETECTION)
    assert shown.find_element(By.CSS_SELECTOR, ".summary").get_attribute("data-count") == "1"
    drawn = picture(shown.find_element(By.CSS_SELECTOR, "img.drawn").get_attribute("src")).astype(int)
    original = cv2.cvtColor(scene(), cv2.COLOR_RGB2BGR).astype(int)
    assert drawn.shape == original.shape
    difference = np.abs(drawn - original).sum(axis=2)
    x1, y1, x2, y2 = (int(round(v)) for v in expected.boxes[0])
    on_box = np.concatenate(
        [difference[y1 + 5 : y2 - 5, x1], difference[y1 + 5 : y2 - 5, x2], difference[y2, x1 + 5 : x2 - 5]]
    )
    assert np.median(on_box) > 60, "the box's edges are drawn on the photo"
    away = difference[y1 + 20 : y2 - 20, x1 + 20 : x2 - 20]
    assert np.percentile(away, 99) < 40, "inside the box, away from its lines and tag, the photo is unchanged"
    assert expected.labels[0] in shown.find_element(By.CSS_SELECTOR, ".detections li").text
    screenshot(browser, "detection")

    # Above the stand-in's score (0.99) the server finds nothing; at 0 it finds the box again.
    set_range(browser, "threshold", Keys.END)
    wait(
        browser, lambda b: settled(b) and "score ≥ 1.00" in panel(b, "scene.png", contract.DETECTION).text, "no re-ask"
    )
    assert (
        panel(browser, "scene.png", contract.DETECTION)
        .find_element(By.CSS_SELECTOR, ".summary")
        .get_attribute("data-count")
        == "0"
    )
    assert client.detect([data], score_threshold=1.0)[0].scores == ()
    set_range(browser, "threshold", Keys.HOME)
    wait(
        browser, lambda b: settled(b) and "score ≥ 0.00" in panel(b, "scene.png", contract.DETECTION).text, "no re-ask"
    )
    assert (
        panel(browser, "scene.png", contract.DETECTION)
        .find_element(By.CSS_SELECTOR, ".summary")
        .get_attribute("data-count")
        == "1"
    )


def canvas_pixel(shown, x: int, y: int) -> tuple[int, int, int]:
    script = (
        "const c = arguments[0].querySelector('canvas.blend');"
        "return Array.from(c.getContext('2d').getImageData(arguments[1], arguments[2], 1, 1).data.slice(0, 3));"
    )
    return tuple(shown.parent.execute_script(script, shown, x, y))


def test_segmentation_blends_the_mask_and_the_legend_lists_the_classes_present(browser, page_url, client, photos):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    (expected,) = client.segment([photos["scene.png"].read_bytes()])
    present = {label: fraction for _, label, fraction in expected.present()}
    person, cat = rect_fraction(PERSON_RECT), rect_fraction(CAT_RECT)
    assert present == pytest.approx({"background": 1 - person - cat, "person": person, "cat": cat}, abs=0.01)
    open_page(browser, page_url, (contract.SEGMENTATION,))
    upload(browser, [photos["scene.png"]], 1)
    shown = panel(browser, "scene.png", contract.SEGMENTATION)
    legend = shown.find_elements(By.CSS_SELECTOR, ".legend li")
    assert {row.get_attribute("data-label"): float(row.get_attribute("data-fraction")) for row in legend} == (
        pytest.approx(present, abs=1e-6)
    )
    assert "person" in shown.find_element(By.CSS_SELECTOR, ".legend").text
    canvas = shown.find_element(By.CSS_SELECTOR, "canvas.blend")
    assert (int(canvas.get_attribute("height")), int(canvas.get_attribute("width"))) == SCENE_SIZE
    screenshot(browser, "segmentation")

    # Opacity 1: the person rectangle shows VOC's person colour; 0: the photo's own dim red.
    x, y = (PERSON_RECT[0] + PERSON_RECT[2]) // 2, (PERSON_RECT[1] + PERSON_RECT[3]) // 2
    set_range(browser, "opacity", Keys.END)
    assert np.abs(np.subtract(canvas_pixel(shown, x, y), VOC_PERSON_RGB)).max() <= 2
    set_range(browser, "opacity", Keys.HOME)
    assert np.abs(np.subtract(canvas_pixel(shown, x, y), (140, 20, 20))).max() <= 2


def test_a_non_image_shows_the_guards_refusal_and_the_photo_beside_it_its_answers(browser, page_url, client, photos):
    from selenium.webdriver.common.by import By

    with pytest.raises(ClientError) as refused:
        client.classify([photos["notes.txt"].read_bytes()])
    open_page(browser, page_url)
    upload(browser, [photos["kitten.jpg"], photos["notes.txt"]], 3)
    for ensemble in (contract.CLASSIFICATION, contract.DETECTION, contract.SEGMENTATION):
        bad = panel(browser, "notes.txt", ensemble)
        assert bad.get_attribute("data-state") == "error"
        message = bad.find_element(By.CSS_SELECTOR, ".error").text
        assert "not a JPEG or PNG" in message
        assert panel(browser, "kitten.jpg", ensemble).get_attribute("data-state") == "done"
    assert panel(browser, "notes.txt", contract.CLASSIFICATION).find_element(By.CSS_SELECTOR, ".error").text == str(
        refused.value
    )
    screenshot(browser, "refusal")


def test_a_file_over_the_guards_limit_is_refused_by_the_page_itself_and_never_sent(browser, page_url, served, tmp_path):

    big = tmp_path / "big.jpg"
    with big.open("wb") as handle:  # sparse: no disk, the browser only reads its size
        handle.truncate(GUARD_MAX_BYTES + 1)
    before = guard_requests(served)
    open_page(browser, page_url, (contract.CLASSIFICATION,))
    upload(browser, [big], 1)
    shown = panel(browser, "big.jpg", contract.CLASSIFICATION)
    assert shown.get_attribute("data-state") == "error"
    assert f"above the limit of {GUARD_MAX_BYTES} bytes" in shown.text and "not sent" in shown.text
    sent = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [name for name in sent if "api/infer" in name], "the page itself refuses it: no upload at all"
    assert guard_requests(served) == before


def post(url: str, body: bytes | None, headers: dict[str, str], declared: int | None = None) -> tuple[int, dict]:
    """A raw HTTP/1.1 POST to the UI; ``declared`` overrides Content-Length (the body is not sent then)."""
    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    length = declared if declared is not None else len(body or b"")
    head = [
        f"POST /api/infer?ensemble={contract.CLASSIFICATION} HTTP/1.1",
        f"Host: {host}",
        f"Content-Length: {length}",
    ]
    head += [f"{k}: {v}" for k, v in headers.items()] + ["Connection: close", "", ""]
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall("\r\n".join(head).encode() + (body if declared is None and body else b""))
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2] or b"{}")


def test_an_upload_declaring_more_than_the_guards_limit_is_refused_unread_and_unforwarded(page_url, served):
    before = guard_requests(served)
    status, answer = post(page_url, None, {"Content-Type": "application/octet-stream"}, declared=GUARD_MAX_BYTES + 1)
    assert status == 413 and not answer["ok"]
    assert answer["error"] == (
        f"{GUARD_MAX_BYTES + 1} bytes is above the limit of {GUARD_MAX_BYTES} bytes "
        f"(the '{GUARD}' step's max_bytes): not sent"
    )
    status, answer = post(page_url, b"x" * 10, {"Content-Type": "text/plain"})
    assert status == 415 and "application/octet-stream" in answer["error"]
    assert guard_requests(served) == before


def test_requests_to_another_host_name_are_refused(page_url):
    request = urllib.request.Request(f"{page_url}api/ensembles", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400
    assert page_url.startswith("http://127.0.0.1:"), "bound to loopback unless told otherwise"


def test_the_page_loads_nothing_from_anywhere_but_its_own_server(browser, page_url, photos):
    open_page(browser, page_url)
    upload(browser, [photos["scene.png"]], 3)
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    origin = page_url.rstrip("/")
    assert loaded and all(name.startswith((origin, "data:", "blob:")) for name in loaded), loaded
    markup = "".join(
        (Path(__file__).resolve().parents[2] / "client" / "triton_vision_ui" / "static" / name).read_text()
        for name in ("index.html", "app.js", "style.css")
    )
    assert "http://" not in markup and "https://" not in markup


def test_an_unreachable_server_is_a_clear_message_on_the_page(browser):
    from selenium.webdriver.common.by import By

    from triton_vision_serving.runtime import free_port

    closed = f"127.0.0.1:{free_port()}"
    with ui_command("--url", closed) as (url, _lines):
        browser.get(url)
        banner = wait(
            browser,
            lambda b: b.find_element(By.ID, "banner").is_displayed() and b.find_element(By.ID, "banner"),
            "no banner",
        )
        assert f"cannot reach a triton-vision server at {closed}" in banner.text
        assert "no server answers" in browser.find_element(By.ID, "ensembles").text
        assert browser.find_element(By.ID, "top-k").get_attribute("value") == str(contract.DEFAULT_TOP_K)
        screenshot(browser, "unreachable")


# A Python model whose loading waits until a file exists (at most 120 s): tritonserver listens only once
# every model is loaded, so the test decides when the server answers.
GATE_CONFIG = """name: "startup_gate"
backend: "python"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_UINT8 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_UINT8 dims: [ 1 ] } ]
"""
GATE_MODEL = """import os
import time


class TritonPythonModel:
    def initialize(self, args):
        deadline = time.monotonic() + 120
        while not os.path.exists({path!r}) and time.monotonic() < deadline:
            time.sleep(0.1)

    def execute(self, requests):
        return []
"""


def test_a_page_opened_while_tritonserver_starts_says_so_then_lists_the_ensembles_by_itself(browser, tmp_path):
    """`serve --ui-port` starts the page first: it says no server answers yet, and asks again. A model
    whose loading waits for the test holds tritonserver's start, so the page is seen before the server
    answers however loaded the machine is."""
    from selenium.webdriver.common.by import By

    from triton_vision_serving.runtime import free_port

    repository = three_ensemble_repository(tmp_path)
    opened = tmp_path / "page-seen"
    gate = repository / "startup_gate"
    (gate / "1").mkdir(parents=True)
    (gate / "config.pbtxt").write_text(GATE_CONFIG)
    (gate / "1" / "model.py").write_text(GATE_MODEL.format(path=str(opened)))
    options = ServerOptions.on_free_ports(repository)
    with running(serve_args(options, free_port()), UI_LINE) as lines:
        browser.get(ui_url(lines))
        first = wait(
            browser,
            lambda b: (
                b.find_element(By.ID, "banner").is_displayed()
                or b.find_elements(By.CSS_SELECTOR, "#ensembles li[data-ensemble]")
            ),
            "the page shows neither the ensembles nor why not",
        )
        assert first is True and "cannot reach a triton-vision server" in browser.find_element(By.ID, "banner").text
        opened.touch()  # now tritonserver may finish loading and listen
        wait(
            browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#ensembles li[data-ensemble]")) == 3, "not listed"
        )
        assert not browser.find_element(By.ID, "banner").is_displayed()


def test_a_prefixed_repository_without_the_prefix_is_said_to_have_its_ensembles_under_it(browser):
    """A repository exported with `export-repo --prefix tv_` (a fake Triton over HTTP here), the page
    opened without --model-prefix: it names the ensembles it found and the option."""
    from selenium.webdriver.common.by import By

    from tests.support.fake_triton import fake_triton, repository

    with fake_triton(repository("tv_")) as server, ui_command("--protocol", "http", "--url", server.url) as (url, _):
        browser.get(url)
        shown = wait(
            browser,
            lambda b: (
                "--model-prefix" in b.find_element(By.ID, "ensembles").text and b.find_element(By.ID, "ensembles").text
            ),
            "no advice",
        )
    assert shown == (
        "The server has no ensemble of a task the UI knows; it has tv_classification, tv_detection, "
        "tv_segmentation: give --model-prefix tv_ (a repository exported with `export-repo --prefix tv_`)."
    )


def test_an_ensemble_of_one_image_per_request_says_so_in_the_singular(browser):
    from selenium.webdriver.common.by import By

    from tests.support.fake_triton import ensemble, fake_triton, repository

    pets = ensemble("pets", contract.CLASSIFICATION, ["classification_infer", "classify_post"], max_batch_size=1)
    with (
        fake_triton([*repository(), pets]) as server,
        ui_command("--protocol", "http", "--url", server.url) as (url, _),
    ):
        open_page(browser, url)
        shown = {
            item.get_attribute("data-ensemble"): item.text
            for item in browser.find_elements(By.CSS_SELECTOR, "#ensembles li[data-ensemble]")
        }
    assert "1 image/request" in shown["pets"] and "images/request" not in shown["pets"]
    assert "32 images/request" in shown["classification"]


def test_ui_command_over_http_lists_the_ensembles_and_answers_like_the_grpc_client(served, client, photos):
    kitten = photos["kitten.jpg"].read_bytes()
    (expected,) = client.classify([kitten])
    with ui_command("--protocol", "http", "--url", served[0].http_url) as (url, lines):
        with urllib.request.urlopen(f"{url}api/ensembles", timeout=60) as response:
            overview = json.load(response)
        status, answer = post(url, kitten, {"Content-Type": "application/octet-stream"})
    assert {e["name"]: e["task"] for e in overview["ensembles"]} == {name: name for name in contract.BUILT_IN_ENSEMBLES}
    assert overview["server"]["protocol"] == "http" and "over http" in "".join(lines)
    assert status == 200 and [row["label"] for row in answer["labels"]] == list(expected.labels)


def test_readme_screenshot_a_photo_and_a_scene_through_every_ensemble(browser, page_url, photos):
    open_page(browser, page_url)
    upload(browser, [photos["kitten.jpg"], photos["scene.png"]], 3)
    screenshot(browser, "playground")
