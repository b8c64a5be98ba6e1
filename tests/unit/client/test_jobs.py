"""The one engine (jobs.run_requests) with a fake transport: batching, bounds, resends, retries."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from triton_vision_client.errors import ServerUnreachableError
from triton_vision_client.jobs import (
    EMPTY,
    NOT_FOUND,
    REFUSED,
    TOO_LARGE,
    UNAVAILABLE,
    UNREADABLE,
    RequestError,
    RetryPolicy,
    read_source,
    run_requests,
)
from triton_vision_client.jobs import as_source as source_of


def echo_split(outputs):
    """The fake server answers each image with its own bytes."""
    return list(outputs["echo"])


class FakeServer:
    """Answers requests (each image -> its bytes), refusing any request holding b"bad"."""

    def __init__(self, *, threaded: bool = False) -> None:
        self.requests: list[list[bytes]] = []
        self.threaded = threaded
        self.lock = threading.Lock()

    def submit(self, images, done) -> None:
        images = list(images)
        with self.lock:
            self.requests.append(images)

        def answer():
            if any(data.startswith(b"bad") for data in images):
                done(None, RequestError(f"image {images.index(b'bad')}: not a JPEG or PNG file", REFUSED))
            else:
                done({"echo": images}, None)

        threading.Thread(target=answer).start() if self.threaded else answer()


class Counted:
    """Iterates over ``paths`` counting how many the engine has taken (``pulled``)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths, self.pulled = paths, 0

    def __iter__(self):
        for path in self.paths:
            self.pulled += 1
            yield path


def write_images(folder: Path, contents: list[bytes]) -> list[Path]:
    paths = []
    for index, data in enumerate(contents):
        path = folder / f"{index:03d}.jpg"
        path.write_bytes(data)
        paths.append(path)
    return paths


@pytest.mark.parametrize("threaded", [False, True])
def test_every_image_gets_its_own_answer_in_requests_of_at_most_batch(tmp_path, threaded):
    contents = [f"image-{i}".encode() for i in range(10)]
    server = FakeServer(threaded=threaded)
    results = list(run_requests(write_images(tmp_path, contents), server.submit, echo_split, batch=4, concurrency=2))
    assert sorted(len(r) for r in server.requests) == [2, 4, 4]
    assert len(results) == 10 and all(r.ok for r in results)
    assert {r.path: r.answer for r in results} == {str(tmp_path / f"{i:03d}.jpg"): c for i, c in enumerate(contents)}


def test_a_refused_batch_is_resent_image_by_image_so_only_the_bad_image_fails(tmp_path):
    contents = [b"good-0", b"good-1", b"bad", b"good-3", b"good-4"]
    server = FakeServer()
    results = {
        r.path: r
        for r in run_requests(write_images(tmp_path, contents), server.submit, echo_split, batch=4, concurrency=1)
    }
    bad = results[str(tmp_path / "002.jpg")]
    assert not bad.ok and bad.reason == REFUSED and "not a JPEG or PNG" in bad.error
    assert [r.path for r in results.values() if r.ok] == [str(tmp_path / f"{i:03d}.jpg") for i in (0, 1, 3, 4)]
    assert [len(r) for r in server.requests] == [4, 1, 1, 1, 1, 1]  # the batch, then its 4 images alone, then the 5th


def test_files_that_cannot_be_read_fail_with_their_reason_and_the_job_goes_on(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "dir.jpg").mkdir()
    (tmp_path / "big.jpg").write_bytes(b"x" * 101)
    (tmp_path / "ok.jpg").write_bytes(b"fine")
    inputs = [tmp_path / n for n in ("missing.jpg", "empty.jpg", "dir.jpg", "big.jpg", "ok.jpg")]
    server = FakeServer()
    results = {
        Path(r.path).name: r
        for r in run_requests(inputs, server.submit, echo_split, batch=4, concurrency=1, max_file_bytes=100)
    }
    assert {n: r.reason for n, r in results.items()} == {
        "missing.jpg": NOT_FOUND,
        "empty.jpg": EMPTY,
        "dir.jpg": UNREADABLE,
        "big.jpg": TOO_LARGE,
        "ok.jpg": None,
    }
    assert server.requests == [[b"fine"]]


def test_images_are_read_only_as_requests_go_out(tmp_path):
    """At most (concurrency + 1) x batch images are read and not yet handed out, whatever the input size:
    the requests in flight, and the one whose answers are being handed out while the next goes."""
    counted = Counted(write_images(tmp_path, [f"{i}".encode() for i in range(200)]))
    answered = 0
    worst = 0

    def submit(images, done):
        nonlocal worst
        worst = max(worst, counted.pulled - answered)
        done({"echo": list(images)}, None)

    for _ in run_requests(counted, submit, echo_split, batch=8, concurrency=3):
        answered += 1
    assert answered == 200
    assert worst <= (3 + 1) * 8


def test_a_batch_stays_under_the_request_byte_budget_and_a_big_image_travels_alone(tmp_path):
    contents = [b"a" * 10, b"b" * 10, b"c" * 60, b"d" * 10]
    server = FakeServer()
    results = list(
        run_requests(
            write_images(tmp_path, contents), server.submit, echo_split, batch=4, concurrency=1, max_request_bytes=64
        )
    )
    assert all(r.ok for r in results)
    assert [[len(d) for d in r] for r in server.requests] == [[10, 10], [60], [10]]


def test_an_unreachable_server_ends_the_job_with_its_error(tmp_path):
    def submit(images, done):
        done(None, ServerUnreachableError("127.0.0.1:1", "grpc", "connection refused"))

    with pytest.raises(ServerUnreachableError, match="triton-vision serve"):
        list(run_requests(write_images(tmp_path, [b"x"]), submit, echo_split, batch=1, concurrency=1))


def test_an_answer_with_the_wrong_number_of_images_fails_those_images_not_the_job(tmp_path):
    def submit(images, done):
        done({"echo": []}, None)

    results = list(run_requests(write_images(tmp_path, [b"x", b"y"]), submit, echo_split, batch=2, concurrency=1))
    assert [r.reason for r in results] == ["server error", "server error"]
    assert "0 answers for 1 images" in results[0].error


def test_read_source_keeps_the_bytes_and_names_a_glob_that_matched_nothing(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"abc")
    assert read_source(source_of(path)) == b"abc"
    from triton_vision_client.inputs import ImageSource

    failed = read_source(
        ImageSource(tmp_path / "*.png", "*.png", Path("*.png"), problem="no file matches this pattern")
    )
    assert failed.reason == NOT_FOUND and failed.error == "no file matches this pattern"


# -- temporary unavailability: back-off, budget, bounded memory ---------------------------------
FAST_RETRY = RetryPolicy(budget_s=5.0, first_s=0.001, max_s=0.004)


class FlakyServer(FakeServer):
    """Says "unavailable" to the first ``down`` requests (a model being reloaded), then answers."""

    def __init__(self, down: int) -> None:
        super().__init__()
        self.down = down

    def submit(self, images, done) -> None:
        images = list(images)
        self.requests.append(images)
        if len(self.requests) <= self.down:
            done(
                None, RequestError("Request for unknown model: 'classification' has no available versions", UNAVAILABLE)
            )
        else:
            done({"echo": images}, None)


def test_a_temporarily_unavailable_request_is_sent_again_until_it_is_answered(tmp_path):
    server = FlakyServer(down=5)
    paths = write_images(tmp_path, [b"a", b"b", b"c"])
    told: list[str] = []
    results = list(
        run_requests(paths, server.submit, echo_split, batch=4, concurrency=1, retry=FAST_RETRY, on_retry=told.append)
    )
    assert [r.ok for r in results] == [True, True, True]
    assert len(server.requests) == 6 and all(request == [b"a", b"b", b"c"] for request in server.requests)
    assert told == ["Request for unknown model: 'classification' has no available versions"] * 5


def test_without_a_retry_budget_unavailable_images_fail_at_once(tmp_path):
    server = FlakyServer(down=1)
    (result,) = run_requests(write_images(tmp_path, [b"a"]), server.submit, echo_split, batch=1, concurrency=1)
    assert result.reason == UNAVAILABLE and "no available versions" in result.error
    assert len(server.requests) == 1


def test_a_request_still_unavailable_when_its_budget_is_spent_fails_saying_so(tmp_path):
    now = [0.0]

    def submit(images, done):
        now[0] += 1.0  # each attempt takes a second of the (fake) clock
        done(None, RequestError("Exceeds maximum queue size", UNAVAILABLE))

    policy = RetryPolicy(budget_s=4.0, first_s=0.0, max_s=0.0)
    (result,) = run_requests(
        write_images(tmp_path, [b"a"]), submit, echo_split, batch=1, concurrency=1, retry=policy, clock=lambda: now[0]
    )
    assert result.reason == UNAVAILABLE
    assert result.error == "Exceeds maximum queue size (still unavailable after 4 retries in 4 s)"


def test_back_off_doubles_from_first_to_max_with_at_most_half_of_it_jitter():
    import random

    policy = RetryPolicy(budget_s=60.0, first_s=0.25, max_s=8.0)
    rng = random.Random(0)
    for attempt, ceiling in enumerate([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]):
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling


def test_requests_waiting_to_be_retried_count_against_concurrency(tmp_path):
    """While the server is unavailable the engine does not read more files than it may hold."""
    counted = Counted(write_images(tmp_path, [f"{i}".encode() for i in range(50)]))
    calls = 0
    worst = 0
    answered = 0

    def submit(images, done):
        nonlocal calls, worst
        calls += 1
        worst = max(worst, counted.pulled - answered)
        if calls <= 30:
            done(None, RequestError("Exceeds maximum queue size", UNAVAILABLE))
        else:
            done({"echo": list(images)}, None)

    for result in run_requests(counted, submit, echo_split, batch=2, concurrency=3, retry=FAST_RETRY):
        assert result.ok
        answered += 1
    assert answered == 50
    assert worst <= (3 + 1) * 2


def test_without_resend_a_refused_batch_fails_whole_with_the_servers_message(tmp_path):
    server = FakeServer()
    results = list(
        run_requests(
            write_images(tmp_path, [b"good", b"bad"]),
            server.submit,
            echo_split,
            batch=2,
            concurrency=1,
            resend_refused=False,
        )
    )
    assert [r.error for r in results] == ["image 1: not a JPEG or PNG file"] * 2
    assert len(server.requests) == 1


def test_images_given_in_memory_are_sent_as_they_are():
    from triton_vision_client.inputs import ImageSource

    server = FakeServer()
    sources = [ImageSource.in_memory(0, b"first"), ImageSource.in_memory(1, b"")]
    results = {r.path: r for r in run_requests(sources, server.submit, echo_split, batch=2, concurrency=1)}
    assert results["image 0"].answer == b"first" and results["image 1"].reason == EMPTY
    assert server.requests == [[b"first"]]
