"""The UI's connections to Triton (fakes for the client and the reader: pure code; the browser tests
run the real ones)."""

from __future__ import annotations

import pytest

from triton_vision_client.errors import ServerUnreachableError


class FakeConnection:
    made: list[FakeConnection] = []
    server_up = False

    def __init__(self, url: str, protocol: str = "grpc", **settings) -> None:
        self.closed = False
        FakeConnection.made.append(self)

    def check_live(self) -> None:
        if not FakeConnection.server_up:
            raise ServerUnreachableError("127.0.0.1:1", "grpc", "connection refused")

    def close(self) -> None:
        self.closed = True


def test_a_server_that_did_not_answer_is_connected_to_afresh_and_a_live_one_keeps_its_connections(monkeypatch):
    from triton_vision_ui import playground as module

    FakeConnection.made, FakeConnection.server_up = [], False
    monkeypatch.setattr(module, "VisionClient", FakeConnection)
    monkeypatch.setattr(module, "TritonReader", FakeConnection)
    found = module.Playground("127.0.0.1:1", "grpc")
    try:
        for _ in range(2):  # tritonserver still starting: each failure drops the client and the reader
            with pytest.raises(ServerUnreachableError):
                found.check_live()
        assert len(FakeConnection.made) == 4 and all(connection.closed for connection in FakeConnection.made)
        FakeConnection.server_up = True
        found.check_live()
        found.check_live()
        assert len(FakeConnection.made) == 6 and not any(connection.closed for connection in FakeConnection.made[4:])
    finally:
        found.close()
    assert all(connection.closed for connection in FakeConnection.made)


def test_a_prefixed_repository_without_the_prefix_is_said_to_have_its_ensembles_under_it():
    from tests.support.fake_triton import fake_triton, repository
    from triton_vision_ui.playground import Playground

    with fake_triton(repository("tv_")) as server:
        found = Playground(server.url, "http")
        try:
            overview = found.overview()
        finally:
            found.close()
        assert overview["ensembles"] == []
        assert overview["advice"] == (
            "it has tv_classification, tv_detection, tv_segmentation: give --model-prefix tv_ "
            "(a repository exported with `export-repo --prefix tv_`)"
        )
        prefixed = Playground(server.url, "http", model_prefix="tv_")
        try:
            overview = prefixed.overview()
        finally:
            prefixed.close()
        assert [e["name"] for e in overview["ensembles"]] == ["tv_classification", "tv_detection", "tv_segmentation"]
        assert "advice" not in overview
