"""The playground shows an embedding ensemble's answer: its size, norm and first values."""

from __future__ import annotations

import math

import numpy as np

import triton_vision_contract as contract
from triton_vision_client.answers import Embedding
from triton_vision_ui import render
from triton_vision_ui.playground import SPLIT, VIEWS, request_parameters


def test_the_page_gets_size_norm_and_the_first_values():
    vector = np.arange(1, 13, dtype=np.float32)
    (answer,) = SPLIT[contract.EMBEDDING]({contract.EMBEDDING_OUTPUT: vector[None]})
    view = VIEWS[contract.EMBEDDING](b"", answer)
    assert view["dim"] == 12 and view["values"] == [float(v) for v in range(1, 9)]
    assert math.isclose(view["norm"], math.sqrt(sum(v * v for v in range(1, 13))), rel_tol=1e-9)
    assert render.embedding_view(Embedding(np.zeros(3, np.float32)))["values"] == [0.0, 0.0, 0.0]
    assert request_parameters(contract.EMBEDDING, {"top_k": "3"}) == {}
